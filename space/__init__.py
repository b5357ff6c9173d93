"""The Gradio Space: ``space.ui.build_demo()`` builds the Blocks; ``space.actions`` holds its logic without Gradio."""
