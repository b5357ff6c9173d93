"""The Gradio Space: ``space.ui.build_demo()`` builds the Blocks; ``space.core`` holds its logic without Gradio."""
