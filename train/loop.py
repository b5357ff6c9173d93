"""The one training loop that every model of expr_models trains with: CycleGAN, SA-GAN, the face segmenter and the
expression classifier.

A model plugs in with a small ``TrainingStep`` (``train/step.py``). The step declares what it trains (modules,
optimisers, the datasets) and implements ``step(batch, step_index) -> dict of losses``, in which it decides which
optimiser updates when (``self.update("discriminator", loss)``). Everything else is here, once:

- ``accelerate``: mixed precision, gradient accumulation, 1..N processes, ``prepare`` of every module, optimiser,
  data loader and scheduler;
- learning-rate schedules stepped once per optimiser update, sized from ``len(dataloader)`` after ``prepare`` (so
  they are the same whatever the number of processes);
- checkpoints that resume *exactly*, written atomically and rotated (``train/checkpoints.py``);
- TensorBoard losses, a progress bar and sample grids (input | output | reconstruction), on the main process only;
- at the end, the model without its discriminators saved with ``save_pretrained`` and a model card, and optionally
  pushed to the Hub.

The flags are dataclass fields (``train/args.py``); the data helpers are in ``train/data.py``. Run any model on one
process or many::

    python train/cyclegan.py --data prepared/paper --output-dir runs/cyclegan        # or python -m train.cyclegan
    accelerate launch --config_file train/configs/multi_gpu.yaml train/cyclegan.py --data prepared/paper

Determinism, so that a resumed run ends where an uninterrupted one would: the data order is a function of
``(seed, epoch)`` (accelerate's seedable sampler), data augmentation is a function of ``(seed, epoch, index)`` (see
``train.data.AugmentedDataset``), and only the steps draw from the global RNGs, whose states every checkpoint holds.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
from torch.utils.data import DataLoader

from train.args import REPO_ROOT, ConfigError, TrainingArguments, parse_args
from train.checkpoints import (CheckpointManager, EMAState, RankLocal, TrainState, push_to_hub, save_final,
                               state_dict_hash)
from train.step import TrainingStep


# ----------------------------------------------------------------------------------------------------------------
# Learning-rate schedules


def lr_lambda(kind: str, total_updates: int, updates_per_epoch: int, warmup: int = 0,
              decay_start_epoch: int | None = None) -> Callable[[int], float]:
    """The factor on the base LR after ``update`` optimiser updates.

    - ``constant``: 1.
    - ``linear`` (the study's): from 1 down to 0 over the whole run, every update.
    - ``reference`` (CycleGAN's): 1 for ``decay_start_epoch`` epochs (default half the run), then down to ~0 in equal
      per-epoch steps, as ``1 - max(0, epoch + 1 - start) / (epochs - start + 1)``.
    - ``cosine``: half a cosine from 1 to 0 over the run.

    ``warmup`` updates ramp the factor up linearly first (all kinds).
    """
    total_updates = max(1, total_updates)
    updates_per_epoch = max(1, updates_per_epoch)
    epochs = max(1, math.ceil(total_updates / updates_per_epoch))
    start = epochs // 2 if decay_start_epoch is None else decay_start_epoch
    if kind not in ("constant", "linear", "reference", "cosine"):
        raise ConfigError(f"unknown LR schedule {kind!r}; expected constant, linear, reference or cosine")

    def factor(update: int) -> float:
        scale = min(1.0, (update + 1) / (warmup + 1)) if warmup else 1.0
        progress = min(1.0, update / total_updates)
        if kind == "linear":
            return scale * max(0.0, 1.0 - progress)
        if kind == "cosine":
            return scale * 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "reference":
            epoch = update // updates_per_epoch
            return scale * max(0.0, 1.0 - max(0, epoch + 1 - start) / float(epochs - start + 1))
        return scale

    return factor


# ----------------------------------------------------------------------------------------------------------------
# The loop


class Trainer:
    def __init__(self, step_class: type[TrainingStep], args: TrainingArguments):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

        self.args = args
        self.step_class = step_class
        output = Path(args.output_dir)
        project = ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs"),
                                       automatic_checkpoint_naming=False, total_limit=args.checkpoints_total_limit)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            cpu=args.cpu,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with="tensorboard" if args.report_to == "tensorboard" else None,
            project_config=project,
            # The data order is a function of (data_seed, epoch): the same after a resume, the same on every process.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
            # Schedulers step once per real optimiser update (see `update`), whatever the number of processes.
            step_scheduler_with_optimizer=False,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=step_class.find_unused_parameters)],
            dynamo_backend="inductor" if args.compile else None,
        )
        self.checkpoints = CheckpointManager(self.accelerator, output / "checkpoints", args.checkpoints_total_limit)
        self.state = TrainState()
        self.ema = None

    def print(self, message: str) -> None:
        """Print on the local main process, above the progress bar."""
        if self.accelerator.is_local_main_process:
            from tqdm.auto import tqdm

            tqdm.write(message)

    # --- set-up ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from accelerate.utils import set_seed

        args, accelerator = self.args, self.accelerator
        set_seed(args.seed, device_specific=True)  # DDP copies rank 0's initial weights to the others
        if args.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if args.num_workers is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            per_process = cpus // accelerator.num_processes - 1
            args.num_workers = 0 if accelerator.device.type == "cpu" else max(0, min(8, per_process))
        if accelerator.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.step_class.cudnn_benchmark and not args.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        step = self.step = self.step_class(args, accelerator)
        step._update = self.update
        step.build()
        if step.train_dataset is None or len(step.train_dataset) == 0:
            raise ConfigError(f"--data {args.data}: no training examples left after filtering")
        modules = step.trainable_modules()
        if args.channels_last:
            for module in modules.values():
                module.to(memory_format=torch.channels_last)
        self.specs = step.make_optimizers()

        train_loader = DataLoader(step.train_dataset, batch_size=args.batch_size, shuffle=True,
                                  drop_last=step.drop_last and len(step.train_dataset) >= args.batch_size,
                                  num_workers=args.num_workers, collate_fn=step.collate,
                                  pin_memory=accelerator.device.type == "cuda",
                                  # its own generator: creating an iterator then draws nothing from the global RNG
                                  generator=torch.Generator().manual_seed(args.seed))
        eval_loader = None
        if step.eval_dataset is not None and len(step.eval_dataset):
            eval_loader = DataLoader(step.eval_dataset, batch_size=args.batch_size, shuffle=False,
                                     num_workers=args.num_workers, collate_fn=step.collate,
                                     generator=torch.Generator().manual_seed(args.seed))

        names = list(modules)
        optimizers = [spec.optimizer for spec in self.specs.values()]
        loaders = [train_loader] + ([eval_loader] if eval_loader is not None else [])
        prepared = accelerator.prepare(*modules.values(), *optimizers, *loaders)
        if not isinstance(prepared, (tuple, list)):
            prepared = (prepared,)
        prepared = list(prepared)
        self.modules = dict(zip(names, prepared[:len(names)]))
        step.nets = SimpleNamespace(**self.modules)
        for spec, optimizer in zip(self.specs.values(), prepared[len(names):len(names) + len(optimizers)]):
            spec.optimizer = optimizer
        self.train_loader = prepared[len(names) + len(optimizers)]
        self.eval_loader = prepared[-1] if eval_loader is not None else None

        # Sizes after prepare: per process, so the schedule is right for any number of processes.
        batches_per_epoch = len(self.train_loader)
        if batches_per_epoch == 0:
            raise ConfigError(f"{len(step.train_dataset)} training examples are fewer than one batch of "
                              f"{args.batch_size} on each of {accelerator.num_processes} processes")
        self.steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
        self.max_steps = args.max_steps or args.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.max_steps / self.steps_per_epoch)

        from torch.optim.lr_scheduler import LambdaLR

        for spec in self.specs.values():
            factor = lr_lambda(spec.schedule, math.ceil(self.max_steps / spec.every),
                               math.ceil(self.steps_per_epoch / spec.every), args.warmup_steps, spec.decay_start_epoch)
            spec.scheduler = accelerator.prepare(LambdaLR(spec.optimizer.optimizer, factor))

        # EMA after prepare, so it starts from the weights every process shares.
        if args.ema:
            from diffusers.training_utils import EMAModel

            target = step.ema_module() or step.model
            self.ema_target = target
            ema = EMAModel(target.parameters(), decay=args.ema_decay, foreach=accelerator.device.type == "cuda")
            ema.to(accelerator.device)
            self.ema = EMAState(ema, accelerator.device)

        accelerator.register_for_checkpointing(self.state)
        if self.ema is not None:
            accelerator.register_for_checkpointing(self.ema)
        for _, obj in sorted(step.rank_local_state().items()):
            accelerator.register_for_checkpointing(RankLocal(obj, accelerator))

        if args.report_to == "tensorboard":
            accelerator.init_trackers(step.name, config=args.hparams())
        self.sample_batch = step.sample_batch() if args.sample_every and accelerator.is_main_process else None
        self.start_step = self.resume()

    def resume(self) -> int:
        """Load ``--resume``; returns the step to go on from (0 for a fresh start)."""
        self.checkpoints.clean_stale()
        if not self.args.resume:
            return 0
        path = self.checkpoints.latest() if self.args.resume == "latest" else Path(self.args.resume)
        if path is None:
            self.print(f"--resume latest: no checkpoint in {self.checkpoints.root}, starting from scratch")
            return 0
        self._warn_if_changed(path)
        try:
            self.accelerator.load_state(str(path))
        except Exception as error:  # noqa: BLE001 - another model configuration, a damaged file
            first_line = (str(error).strip().splitlines() or [""])[0][:300]
            raise ConfigError(f"--resume {path}: cannot load this checkpoint into the configured run; was it "
                              f"written with other model arguments? ({type(error).__name__}: {first_line})") from error
        self.print(f"Resumed from {path} at step {self.state.step}")
        return self.state.step

    def _warn_if_changed(self, path: Path) -> None:
        saved_file = path / "trainer_state.json"
        if not saved_file.is_file():
            return
        saved = json.loads(saved_file.read_text())
        current = {"batch_size": self.args.batch_size, "num_processes": self.accelerator.num_processes,
                   "gradient_accumulation_steps": self.args.gradient_accumulation_steps, "seed": self.args.seed}
        changed = {key: (saved.get(key), value) for key, value in current.items()
                   if key in saved and saved.get(key) != value}
        if changed:
            text = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
            self.print(f"warning: resuming with {text}; the run goes on but will not match an uninterrupted one")

    # --- the steps ------------------------------------------------------------------------------------------------
    def update(self, name: str, loss: torch.Tensor) -> None:
        spec, accelerator = self.specs[name], self.accelerator
        accelerator.backward(loss)
        if accelerator.sync_gradients and spec.max_grad_norm:
            accelerator.clip_grad_norm_([p for g in spec.optimizer.param_groups for p in g["params"]],
                                        spec.max_grad_norm)
        spec.optimizer.step()  # a no-op while gradients accumulate
        if accelerator.sync_gradients:
            if not spec.optimizer.step_was_skipped:  # fp16 overflow: no update, so no schedule step either
                spec.scheduler.step()
            if spec.ema and self.ema is not None:
                self.ema.ema.step(self.ema_target.parameters())
        spec.optimizer.zero_grad(set_to_none=True)

    def train(self) -> int:
        args, accelerator, step = self.args, self.accelerator, self.step
        start_step = self.start_step
        started = time.time()
        elapsed_before = self.state.elapsed_seconds
        self.print(f"Training {step.name}: {len(step.train_dataset)} examples, {self.steps_per_epoch} steps per epoch "
                   f"on {accelerator.num_processes} process(es) of {args.batch_size} x "
                   f"{args.gradient_accumulation_steps} accumulation, {self.max_steps} steps ({self.epochs} epochs), "
                   f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}")
        from tqdm.auto import tqdm

        progress = tqdm(total=self.max_steps, initial=start_step, desc=step.name, dynamic_ncols=True,
                        disable=not accelerator.is_local_main_process)
        running: dict[str, list] = {}
        self.last_losses: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.metrics_step = -1
        global_step = start_step
        stopped = False
        first_epoch = global_step // self.steps_per_epoch
        for module in self.modules.values():
            module.train()

        for epoch in range(first_epoch, self.epochs):
            if global_step >= self.max_steps or stopped:
                break
            self.train_loader.set_epoch(epoch)
            if hasattr(step.train_dataset, "set_epoch"):  # augmentation is a function of (seed, epoch, index)
                step.train_dataset.set_epoch(epoch)
            loader = self.train_loader
            done_in_epoch = global_step - epoch * self.steps_per_epoch
            if done_in_epoch > 0:  # resuming mid-epoch: skip what the interrupted run already trained on
                loader = accelerator.skip_first_batches(self.train_loader,
                                                        done_in_epoch * args.gradient_accumulation_steps)
            for batch in loader:
                with accelerator.accumulate(*self.modules.values()):
                    losses = step.step(batch, global_step)
                for key, value in losses.items():
                    entry = running.setdefault(key, [0.0, 0])
                    entry[0] = entry[0] + (value.detach().float() if torch.is_tensor(value) else float(value))
                    entry[1] += 1
                if not accelerator.sync_gradients:
                    continue
                global_step += 1
                self.state.step = global_step
                self.state.elapsed_seconds = elapsed_before + time.time() - started
                progress.update(1)
                if global_step % args.log_every == 0 or global_step == self.max_steps:
                    self._log(running, global_step, epoch, progress)
                    running = {}
                if args.sample_every and global_step % args.sample_every == 0:
                    self._write_samples(global_step)
                if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                    self._save_checkpoint(global_step, epoch)
                if args.stop_after_steps and global_step >= args.stop_after_steps:
                    stopped = True
                    break
                if global_step >= self.max_steps:
                    break
            epoch_done = global_step == (epoch + 1) * self.steps_per_epoch or global_step >= self.max_steps
            if not stopped and epoch_done and args.eval_every_epochs and (epoch + 1) % args.eval_every_epochs == 0:
                self._evaluate(global_step, epoch)
        progress.close()

        if stopped:
            self.print(f"Stopped after step {global_step} (--stop-after-steps); no final model written")
            accelerator.end_training()
            return 0
        if running:
            self._log(running, global_step, self.epochs - 1, None)
        if self.metrics_step != global_step:
            self._evaluate(global_step, self.epochs - 1)
        if args.sample_every and global_step % args.sample_every:
            self._write_samples(global_step)
        self.state.elapsed_seconds = elapsed_before + time.time() - started
        return self._finish(global_step)

    # --- logging, samples, evaluation, checkpoints ----------------------------------------------------------------
    def _log(self, running: dict, global_step: int, epoch: int, progress) -> None:
        if not running:
            return
        keys = list(running)  # the order the step returned them in, the same on every process
        means = torch.stack([torch.as_tensor(running[k][0], dtype=torch.float32, device=self.accelerator.device)
                             / running[k][1] for k in keys])
        means = self.accelerator.reduce(means, reduction="mean").tolist()  # every process calls this
        values = dict(zip(keys, means))
        self.last_losses = values
        logs = {f"loss/{key}": value for key, value in values.items()}
        for name, spec in self.specs.items():
            logs[f"lr/{name}"] = spec.scheduler.get_last_lr()[0]
        logs["epoch"] = epoch
        self.accelerator.log(logs, step=global_step)
        if progress is not None:
            progress.set_postfix({key: f"{value:.3g}" for key, value in list(values.items())[:4]}, refresh=False)

    def _write_samples(self, global_step: int) -> None:
        if self.sample_batch is None or not self.accelerator.is_main_process:
            return
        from accelerate.utils import send_to_device
        from torchvision.utils import make_grid, save_image

        step = self.step
        states = {name: module.training for name, module in self.modules.items()}
        for module in self.modules.values():
            module.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                rows = step.sample_rows(send_to_device(self.sample_batch, self.accelerator.device))
        finally:
            for name, module in self.modules.items():
                module.train(states[name])
        if rows is None:
            return
        count, columns = rows.shape[:2]
        grid = make_grid(rows.flatten(0, 1).float().cpu(), nrow=columns, normalize=True, value_range=(-1, 1),
                         padding=2, pad_value=1.0)
        folder = Path(self.args.output_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(grid, folder / f"step_{global_step:07d}.png")
        if self.args.report_to == "tensorboard":
            self.accelerator.get_tracker("tensorboard", unwrap=True).add_image("samples", grid, global_step)

    def _evaluate(self, global_step: int, epoch: int) -> None:
        if self.eval_loader is None:
            return
        states = {name: module.training for name, module in self.modules.items()}
        for module in self.modules.values():
            module.eval()
        try:
            with self.accelerator.autocast():
                metrics = self.step.evaluate(self.eval_loader)
        finally:
            for name, module in self.modules.items():
                module.train(states[name])
        self.metrics_step = global_step
        if not metrics:
            return
        self.metrics = metrics
        self.accelerator.log({f"eval/{key}": value for key, value in metrics.items()}, step=global_step)
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        self.print(f"epoch {epoch + 1}/{self.epochs} (step {global_step}): {shown}")

    def _save_checkpoint(self, global_step: int, epoch: int) -> None:
        extra = {"step": global_step, "epoch": epoch, "batch_size": self.args.batch_size,
                 "num_processes": self.accelerator.num_processes, "seed": self.args.seed,
                 "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
                 "args": {key: str(value) for key, value in self.args.hparams().items()}}
        path = self.checkpoints.save(global_step, extra)
        self.print(f"Saved checkpoint {path}")

    # --- the end --------------------------------------------------------------------------------------------------
    def _finish(self, global_step: int) -> int:
        args, accelerator, step = self.args, self.accelerator, self.step
        accelerator.wait_for_everyone()
        if args.debug_dump_weights:
            folder = Path(args.output_dir) / "debug"
            folder.mkdir(parents=True, exist_ok=True)
            digest = state_dict_hash(self.accelerator.unwrap_model(step.model).state_dict())
            (folder / f"weights_rank{accelerator.process_index}.sha256").write_text(digest + "\n")
        if self.ema is not None:
            self.ema.ema.copy_to(self.ema_target.parameters())
        model = step.final_model()
        minutes = self.state.elapsed_seconds / 60
        took = (f"{self.state.elapsed_seconds:.0f} seconds" if minutes < 1 else
                f"{minutes:.1f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours")
        devices = _device_description(accelerator)
        command = _command_line(self.step_class, getattr(args, "argv", None))
        model.card_info = {
            "training_data": step.training_data_description(),
            "training": (f"{global_step} steps, {global_step / self.steps_per_epoch:.3g} epochs, on {devices}, took "
                         f"{took}, command `{command}`. Batch {args.batch_size} per process x "
                         f"{accelerator.num_processes} process(es) x {args.gradient_accumulation_steps} accumulation, "
                         f"mixed precision {accelerator.mixed_precision}, seed {args.seed}"
                         + (f", weights are an EMA (decay {args.ema_decay})" if self.ema is not None else "") + "."),
            "metrics": {**{f"final training {key} (mean of the last {args.log_every} steps)": f"{value:.4f}"
                           for key, value in self.last_losses.items()},
                        **{f"validation {key}": f"{value:.4f}" for key, value in self.metrics.items()}},
        }
        final_dir = Path(args.output_dir) / "final"
        status = 0
        if accelerator.is_main_process:
            save_final(model, final_dir)
            summary = {"steps": global_step, "epochs": global_step / self.steps_per_epoch, "minutes": minutes,
                       "devices": devices, "command": command, "losses": self.last_losses, "metrics": self.metrics}
            (Path(args.output_dir) / "training_summary.json").write_text(json.dumps(summary, indent=2))
            self.print(f"Saved the final model to {final_dir}")
            if args.push_to_hub:
                status = push_to_hub(model, args.push_to_hub, final_dir, private=not args.public)
        accelerator.end_training()
        return status


def _device_description(accelerator) -> str:
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = device.type.upper()
    return f"{accelerator.num_processes} x {name}"


def _command_line(step_class: type[TrainingStep], argv: list[str] | None) -> str:
    if argv is not None:  # called as a function (tests, notebooks)
        return f"python -m {step_class.__module__} {shlex.join(argv)}"
    launcher = "accelerate launch" if os.environ.get("ACCELERATE_DYNAMO_BACKEND") is not None or \
        os.environ.get("ACCELERATE_MIXED_PRECISION") is not None else "python"
    argv = list(sys.argv)
    try:
        argv[0] = os.path.relpath(argv[0], REPO_ROOT)
    except ValueError:
        pass
    return f"{launcher} {shlex.join(argv)}"


def main(step_class: type[TrainingStep], argv: list[str] | None = None) -> int:
    """Parse, check, set up and train; a bad configuration ends with one ``error:`` line and status 2."""
    args = parse_args(step_class, argv)
    args.argv = None if argv is None else list(argv)
    trainer = None
    try:
        args.check()
        step_class.check_arguments(args)
        trainer = Trainer(step_class, args)
        trainer.setup()
    except ConfigError as error:
        if trainer is None or trainer.accelerator.is_local_main_process:
            print(f"error: {error}", file=sys.stderr)
        return 2
    return trainer.train()
