"""The training run: a :class:`Trainer` built completely in its constructor, then ``run()``.

Callers that need to watch or disturb a run (tests: kill it after iteration N, make a loss
NaN, slow steps down) pass :class:`Callback` objects; production code reads no test hooks.

Under DDP the run owns the process group's users (the DDP module and its reducer, the
optimizer, the data on the device): :func:`train` releases them, collects reference cycles,
waits for every process and only then destroys the process group, so nothing that talks to
the group is torn down at interpreter exit.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import time
from collections.abc import Sequence
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F

from resgraph.errors import TrainError
from resgraph.options import with_flags
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import config as cfg
from resgraph.train import device as dev
from resgraph.train import distributed, inputs, report, runfolder
from resgraph.train import model as model_io
from resgraph.train import stream as stream_io
from resgraph.train.batches import mix_seed
from resgraph.train.evaluate import build, evaluate, refuse_backbone
from resgraph.train.report import make_reporter, plural
from resgraph.train.schedule import Meter, NonFiniteLoss, Schedule
from resgraph.train.stop import REPEAT_WINDOW_S, StopRequest

__all__ = ["REPEAT_WINDOW_S", "Callback", "StopRequest", "Trainer", "train"]

CURVES_EVERY_S = 600.0
SKIPPED_WARN = 50  # fp16: warn when the gradient scaler skips this many steps in a row


class Callback:
    """Hooks into a run. Every method does nothing by default."""

    def on_loss(self, trainer: Trainer, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        """The loss of ``iteration`` (0-based) before backward; return it or a replacement."""
        return loss

    def after_iteration(self, trainer: Trainer, iteration: int) -> None:
        """Called after ``iteration`` (1-based count of finished iterations) and its
        evaluation and checkpoint, if any were due."""


def train(opts: cfg.TrainOptions, callbacks: Sequence[Callback] = ()) -> int:
    """Run (or resume) training; returns the exit status (0, or 128 + signal when stopped)."""
    d = distributed.from_env()
    if opts.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = dev.pick_device(opts.device, d.local_rank)
    dev.check_amp(opts.amp, device)
    if opts.sync_bn and device.type != "cuda":
        raise TrainError(
            "--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on "
            "the CPU); leave it out"
        )
    free = dev.free_memory(device)  # before anything of this run is on the device
    distributed.init(d, device)
    trainer: Trainer | None = None
    finished = False
    try:
        with StopRequest(keep_on_stop=d.enabled) as stop:
            trainer = Trainer(opts, d, device, stop, callbacks, free_bytes=free)
            code = trainer.run()
            finished = True
            return code
    finally:
        if trainer is not None:
            trainer.release()
        del trainer
        gc.collect()  # DistributedDataParallel sits in a reference cycle: free it now
        d.close(wait=finished)


class Trainer:
    """Everything a run needs, built in the constructor: spec, data, model, optimizer,
    schedule, scaler, restored state. ``run()`` writes the run folder and trains."""

    def __init__(
        self,
        opts: cfg.TrainOptions,
        d: distributed.Dist,
        device: torch.device,
        stop: StopRequest | None = None,
        callbacks: Sequence[Callback] = (),
        free_bytes: int | None = None,
    ) -> None:
        self.opts, self.d, self.device = opts, d, device
        self.stop = stop if stop is not None else StopRequest()
        self.callbacks = list(callbacks)
        self.free_bytes = free_bytes
        self.echo = click.echo if d.is_main and not opts.quiet else (lambda *a, **k: None)
        self.spec = load_spec(opts.spec, opts.overrides)
        refuse_backbone(self.spec, "train")
        self.ir = lower(self.spec)
        self.dir = opts.run_dir
        if opts.init_from is not None and opts.resume:
            raise TrainError(
                "--init-from starts a new run from weights and --resume continues a run from "
                "its checkpoint: give one of them"
            )
        resume = cfg.run_state(self.dir, opts.resume) == "resume"
        path = self.dir / cfg.CHECKPOINT
        self.ckpt = ckpt_io.load_run(path, self.spec, device) if resume else None
        self.init_state = (
            model_io.read_init(opts.init_from, self.spec, d, self.echo) if opts.init_from else None
        )
        if opts.resume and self.ckpt is None:
            self.echo(f"no checkpoint in {self.dir}: starting a new run")
        saved = self.ckpt["config"] if self.ckpt is not None else None
        self.recipe = cfg.recipe(self.spec, opts, saved)
        self.images, self.data = inputs.setup(self.recipe, opts, self.spec, d, device, self.echo)
        self.config = self._config()
        self._model()
        self._last_saved: int | None = self.start if self.ckpt is not None else None
        self._it = self._last_read = self.start
        self.reporter = make_reporter(opts.quiet, d.is_main)
        d.barrier()  # every process has checked the folder before rank 0 writes to it

    def _config(self) -> cfg.RunConfig:
        """The resolved run configuration; a resumed run must keep its recipe."""
        config = cfg.resolve(
            self.opts.spec,
            self.spec,
            self.recipe,
            self.opts,
            self.data.steps_per_epoch,
            self.d.world,
            str(self.device),
            str(torch.__version__),
            classes=self.images.classes,
        )
        if self.ckpt is not None:
            cfg.refuse_changed_recipe(self.ckpt["config"], config, self.dir)
        return config

    def _model(self) -> None:
        o, c, r = self.opts, self.config, self.recipe
        dev.set_precision(self.device, tf32=o.tf32, deterministic=o.deterministic)
        self.raw = build(self.ir, o.engine, seed=r.seed)
        if self.ckpt is not None:
            ckpt_io.load_model_state(self.raw, self.ckpt["model"], str(self.dir / cfg.CHECKPOINT))
        elif self.init_state is not None:
            model_io.load_init(self.raw, self.init_state, self.opts.init_from, self.d)
            self.init_state = None
        self.raw, self.net = model_io.place(self.raw, self.ir, o, self.device, self.d)
        self.opt = dev.make_optimizer(self.raw.parameters(), r, self.device)
        cosine = c.iterations if r.schedule == "cosine" else None
        self.schedule = Schedule(
            r.lr, c.milestones, r.gamma, r.warmup_lr, r.warmup_until_error, cosine_over=cosine
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=o.amp == "fp16")
        self.autocast = dev.autocast(o.amp, self.device)
        self.meter = Meter(self.device)
        self.history: list[dict[str, Any]] = []
        self.elapsed0, self.start = 0.0, 0
        random.seed(mix_seed(r.seed, self.d.rank, 4))
        np.random.seed(mix_seed(r.seed, self.d.rank, 5) % 2**32)
        if self.ckpt is not None:
            self._restore(self.ckpt)

    def _restore(self, ck: dict[str, Any]) -> None:
        ckpt_io.restore(
            ck,
            optimizer=self.opt,
            schedule=self.schedule,
            scaler=self.scaler,
            meter=self.meter,
            data=self.data,
        )
        self.history = list(ck["history"])
        self.elapsed0 = float(ck["elapsed_s"])
        self.start = int(ck["data"]["iteration"])
        if not ckpt_io.restore_rng(ck, self.d.rank, self.d.world, self.device):
            self.echo(
                f"note: the run had {len(ck['rng'])} processes, now {self.d.world}: Python "
                "and numpy random states are re-seeded (resgraph's own draws do not "
                "depend on them)"
            )

    def release(self) -> None:
        """Drop everything the run holds on the device and in the process group."""
        for name in (
            "net",
            "raw",
            "opt",
            "scaler",
            "data",
            "meter",
            "ckpt",
            "init_state",
            "reporter",
        ):
            self.__dict__.pop(name, None)

    # --- writing --------------------------------------------------------------------------

    def _header(self) -> None:
        o, r = self.opts, self.recipe
        params = sum(p.numel() for p in self.raw.parameters())
        self.echo(f"{self.spec.name} ({params:,} parameters) on {self.images.describe()}")
        for note in self.images.notes:
            self.echo(f"  {note}")
        if isinstance(self.data, stream_io.StreamData):
            self.echo(f"  {stream_io.describe(r.crop, self.spec.input.size, self.data.flip)}")
        self.echo(report.schedule_line(self.config, r))
        per_rank = r.batch_size // self.d.world
        plan = dev.memory_plan(
            self.ir, self.raw, per_rank, o.amp, self.device, self.data.nbytes, free=self.free_bytes
        )
        memory = plan.describe(o.checkpoint_activations)
        self.echo(report.device_line(self.device, self.d.world, o, memory, self.dir))
        warning = dev.memory_warning(plan, per_rank, o.amp, o.checkpoint_activations)
        if warning and self.d.is_main:
            click.echo(warning, err=True)

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        if self.d.is_main:
            runfolder.make(self.dir)
        if self.ckpt is not None and self.ckpt.get("complete"):
            self.echo(f"{self.dir} is already complete ({plural(self.start, 'iteration')})")
            if self.d.is_main and self.history:
                self._curves()
            return 0
        if self.d.is_main and self.images.skipped:
            runfolder.write_unreadable(self.dir, self.images.skipped)
        if self.d.is_main:
            data = self.config.to_dict()
            if self.ckpt is not None:
                data["resumed_at"] = int(self.ckpt["data"]["iteration"])
            runfolder.write_config(self.dir, data)
        self._header()
        if self.ckpt is not None:
            self.echo(f"resuming at iteration {self.start}")
        elif self.opts.init_from is not None:
            self.echo(f"starting from the weights in {self.opts.init_from}")
        try:
            return self._loop()
        except NonFiniteLoss as exc:
            self._finish_files()
            last = self._last_saved
            kept = (
                f"the last good checkpoint {self.dir / cfg.CHECKPOINT} (iteration {last}) is kept"
                if last is not None
                else "no checkpoint had been written yet"
            )
            raise TrainError(
                f"the training loss became {exc} between iterations {self._last_read + 1} and "
                f"{self._it} (lr {self.schedule.lr(self._it - 1):g}); training stopped and "
                f"{kept}. A new run with a lower --lr (or --amp off) usually helps"
            ) from None
        finally:
            self.reporter.close()

    def _loop(self) -> int:
        c = self.config
        it = self.start
        self.session0 = self.mark = self._window0 = time.monotonic()
        self._wait0 = self.data.wait_s
        self.last_curves = self.mark
        self.reporter.start(c.iterations, it)
        self.net.train()
        stopping = False
        while it < c.iterations:
            lr = self.schedule.lr(it)
            self._step(it, lr)
            it = self._it = it + 1
            boundary = it % c.sync_every == 0
            eval_due = it % c.eval_every == 0 or it == c.iterations
            ckpt_due = it % c.checkpoint_every == 0 or it == c.iterations
            local_stop = self.stop.signum is not None and (boundary or not self.d.enabled)
            if boundary or eval_due or ckpt_due or local_stop:
                now = time.monotonic()
                stopping = self.meter.read(self.d.sum, local_stop, self.d.world, now - self.mark)
                self.mark, self._last_read = now, it
                self._check_skipped(it)
            stats = None
            if boundary:
                stats = self._window_stats(lr)
                err = stats["error"]
                if self.schedule.observe(it, err):
                    self.reporter.note(
                        f"warm-up over at iteration {it} (training error "
                        f"{100 * err:.1f}%): lr {self.schedule.lr(it):g} from now"
                    )
            if eval_due:
                self._evaluate(it, lr)
            self.reporter.step(it, stats)
            if ckpt_due or stopping:
                self._save(it, complete=it == c.iterations)
            for callback in self.callbacks:
                callback.after_iteration(self, it)
            if stopping:
                break
            if self.d.is_main and time.monotonic() - self.last_curves > CURVES_EVERY_S:
                self._curves()
        self.reporter.close()
        self._finish_files()
        if stopping:
            return self._stopped(it)
        self._check_replicas()
        last = self.history[-1] if self.history else None
        if last is not None:
            self.echo(
                f"done: test error {100 * last['test_error']:.2f}% after "
                f"{plural(it, 'iteration')} ({last['time_s']:.0f} s); results in {self.dir}"
            )
        return 0

    def _window_stats(self, lr: float) -> dict[str, float]:
        """The last window's training statistics and the share of its time spent waiting
        for data (a data-bound run shows a large one)."""
        loss, err, ips = self.meter.take_window()
        now = time.monotonic()
        wait = (self.data.wait_s - self._wait0) / max(now - self._window0, 1e-9)
        self._window0, self._wait0 = now, self.data.wait_s
        return {"loss": loss, "error": err, "lr": lr, "images_per_s": ips, "data_wait": wait}

    def _stopped(self, it: int) -> int:
        """Say how to continue a stopped run; the exit status is 128 + the signal."""
        signum = self.stop.signum or signal.SIGTERM
        name = signal.Signals(signum).name
        if self.d.is_main:  # even with --quiet
            click.echo(
                f"stopped by {name} after iteration {it}: checkpoint saved to "
                f"{self.dir / cfg.CHECKPOINT}; continue with: resgraph train "
                f"{with_flags(self.opts.spec, self.opts.overrides)} --out {self.dir} --resume"
            )
        return 128 + signum

    def _step(self, it: int, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y = self.data.train_batch(it)
        # Random layers (stochastic depth, dropout) draw from (seed, iteration): the same
        # on every process, so all of them drop the same blocks, and the same after a resume.
        dev.seed_step(mix_seed(self.recipe.seed, it, 3), self.device)
        compiling = self.opts.compile and it == self.start
        try:
            with self.autocast():
                out = self.net(x)
                loss = F.cross_entropy(out, y, label_smoothing=self.recipe.label_smoothing)
            for callback in self.callbacks:
                loss = callback.on_loss(self, it, loss)
            self.opt.zero_grad(set_to_none=True)
            scaled = self.scaler.scale(loss)  # (creates the scale on the first call)
            scale = self.scaler._scale if self.scaler.is_enabled() else None
            before = scale.clone() if scale is not None else None
            scaled.backward()
        except Exception as exc:
            if compiling:
                raise dev.compile_error(exc) from None
            raise
        self.scaler.step(self.opt)
        self.scaler.update()
        skipped = None
        if before is not None:  # the scale shrinks exactly when the step was skipped
            skipped = self.scaler._scale < before  # type: ignore[operator]
        self.meter.add(loss.detach(), (out.detach().argmax(1) != y).sum(), len(y), skipped)

    def _check_skipped(self, it: int) -> None:
        streak = self.meter.skip_streak
        if streak >= SKIPPED_WARN and not self.meter.warned_skips and self.d.is_main:
            self.meter.warned_skips = True
            click.echo(
                f"warning: the fp16 gradient scaler skipped the last {streak} steps in "
                f"a row (up to iteration {it}): gradients overflow even at a small "
                "scale; try --amp bf16, --amp off or a lower --lr",
                err=True,
            )

    def _evaluate(self, it: int, lr: float) -> None:
        t0 = time.monotonic()
        train_loss, train_err, ips = self.meter.take_period()
        if self.d.is_main:
            test_loss, test_err = evaluate(self.raw, self.data.eval_batches("test"), self.autocast)
            val_loss = val_err = None
            if self.data.validation is not None:
                val_loss, val_err = evaluate(self.raw, self.data.eval_batches("val"), self.autocast)
            row = {
                "epoch": round(it / self.config.steps_per_epoch, 4),
                "iteration": it,
                "lr": lr,
                "train_loss": train_loss,
                "train_error": train_err,
                "test_loss": test_loss,
                "test_error": test_err,
                "val_loss": val_loss,
                "val_error": val_err,
                "images_per_s": ips,
                "time_s": self._elapsed(),
            }
            self.history.append(row)
            runfolder.write_metrics(self.dir, self.history)
            self.reporter.row(row)
        self.mark += time.monotonic() - t0  # evaluation time is not training time

    def _elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.session0

    def _save(self, it: int, complete: bool) -> None:
        """Rank 0 writes the checkpoint; every process waits for the write (and learns
        whether it failed) before going on, so none exits while rank 0 is still writing."""
        t0 = time.monotonic()
        rngs = self.d.gather(ckpt_io.rng_state(self.device))
        failed = self.d.gather(list(getattr(self.data, "failed", [])))
        if self.d.is_main and any(failed):
            lines = self.images.skipped + [f for rank in failed for f in rank]
            runfolder.write_unreadable(self.dir, lines)
        error = None
        if self.d.is_main:
            path = self.dir / cfg.CHECKPOINT
            state = ckpt_io.snapshot(
                model=self.raw,
                optimizer=self.opt,
                schedule=self.schedule,
                scaler=self.scaler,
                rngs=rngs,
                position=self.data.position(it),
                meter=self.meter,
                history=self.history,
                data_mean=self.data.mean,
                elapsed_s=self._elapsed(),
                config=self.config.to_dict(),
                complete=complete,
            )
            self.stop.saving = True
            try:
                runfolder.write(path, "the checkpoint", lambda: ckpt_io.save_atomic(state, path))
            except TrainError as exc:
                error = str(exc)
            finally:
                self.stop.saving = False
        error = self.d.from_main(error)
        if error:
            if not self.d.is_main:
                raise click.exceptions.Exit(1)
            raise TrainError(error)
        self._last_saved = it
        self.mark += time.monotonic() - t0

    def _curves(self) -> None:
        title = f"{self.spec.name} on {self.recipe.dataset}"
        runfolder.write_curves(self.dir, self.history, title)
        self.last_curves = time.monotonic()

    def _finish_files(self) -> None:
        if self.d.is_main and self.history:
            self._curves()

    def _check_replicas(self) -> None:
        """Under DDP, every process must end with the same parameters: compare digests."""
        if not self.d.enabled:
            return
        digests = self.d.gather(distributed.param_digest(self.raw))
        same = len(set(digests)) == 1
        if self.d.is_main:
            runfolder.write_replica_check(self.dir, digests)
            self.echo(
                f"{self.d.world} processes end with identical parameters: {'yes' if same else 'NO'}"
            )
        if not same:
            raise TrainError("the processes ended with different parameters (see ddp_check.json)")
