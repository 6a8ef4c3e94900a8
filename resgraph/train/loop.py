"""The training run: set-up, the loop, evaluations, checkpoints, interruption.

Test-only hooks (environment variables, read once per run):
``RESGRAPH_TEST_SIGNAL=SIGKILL@5`` makes the process send itself that signal right after
iteration 5 (and its checkpoint, if one is due); ``RESGRAPH_TEST_NAN_AT=7`` turns the loss of
iteration 7 into NaN.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from resgraph.errors import TrainError
from resgraph.fsutil import atomic_write_text
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import config as cfg
from resgraph.train import device as dev
from resgraph.train import distributed, plots
from resgraph.train.batches import DeviceData, mix_seed, split_validation
from resgraph.train.data import load_images
from resgraph.train.evaluate import build, evaluate
from resgraph.train.report import make_reporter
from resgraph.train.schedule import Meter, NonFiniteLoss, Schedule

SIGNAL_ENV, NAN_ENV = "RESGRAPH_TEST_SIGNAL", "RESGRAPH_TEST_NAN_AT"
CURVES_EVERY_S = 600.0


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops. A second one aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(opts: cfg.TrainOptions) -> int:
    """Run (or resume) training; returns the exit status (0, or 128 + signal when stopped)."""
    d = distributed.from_env()
    if opts.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = dev.pick_device(opts.device, d.local_rank)
    dev.check_amp(opts.amp, device)
    distributed.init(d, device)
    try:
        with StopRequest() as stop:
            return Run(opts, d, device, stop).run()
    finally:
        d.close()


class Run:
    def __init__(self, opts: cfg.TrainOptions, d: distributed.Dist, device: torch.device,
                 stop: StopRequest) -> None:
        self.opts, self.d, self.device, self.stop = opts, d, device, stop
        self.echo = click.echo if d.is_main and not opts.quiet else (lambda *a, **k: None)
        self.spec = load_spec(opts.spec)
        self.ir = lower(self.spec)
        recipe = cfg.override(self.spec.train, opts)
        self.dir = opts.run_dir
        state = cfg.run_state(self.dir, opts.resume)
        self.ckpt = ckpt_io.load(self.dir / cfg.CHECKPOINT, device) if state == "resume" else None
        if opts.resume and self.ckpt is None:
            self.echo(f"no checkpoint in {self.dir}: starting a new run")
        self.data = self._data(recipe)
        self.config = cfg.resolve(
            opts.spec, self.spec.name, recipe, opts, self.data.steps_per_epoch, d.world,
            str(device), str(torch.__version__),
        )
        if self.ckpt is not None:
            changes = cfg.recipe_changes(self.ckpt["config"], self.config)
            if changes:
                raise TrainError(
                    f"{self.dir} was started with another recipe ({'; '.join(changes)}); a "
                    "resumed run keeps its recipe: drop the flags that change it, or start a "
                    "new run with another --out"
                )
        self.recipe = recipe
        d.barrier()  # every process has checked the folder before rank 0 writes to it

    def _data(self, recipe: Any) -> DeviceData:
        o, inp = self.opts, self.spec.input
        loader: dict[str, Any] = {"download": o.download, "url": o.cifar_url, "log": self.echo}
        if o.cifar_md5:
            loader["md5"] = o.cifar_md5
        images, error = None, None
        if self.d.is_main:  # rank 0 downloads (if asked) before the others read
            try:
                images = load_images(recipe.dataset, o.data_dir, inp.channels, inp.size, **loader)
            except TrainError as exc:
                error = str(exc)
        error = self.d.from_main(error)
        if error:
            raise TrainError(error)
        if images is None:
            images = load_images(recipe.dataset, o.data_dir, inp.channels, inp.size)
        images, validation = split_validation(images, recipe.validation_split)
        self.images = images
        return DeviceData(
            images, self.device, batch_size=recipe.batch_size, seed=recipe.seed,
            augment=recipe.augment, rank=self.d.rank, world=self.d.world,
            channels_last=o.channels_last, validation=validation,
        )

    # --- set-up -------------------------------------------------------------------------

    def _model(self) -> None:
        o, c, r = self.opts, self.config, self.recipe
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not o.deterministic
        if o.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
        self.raw = build(self.ir, o.engine, seed=r.seed)
        if self.ckpt is not None:
            ckpt_io.load_model_state(self.raw, self.ckpt["model"], str(self.dir / cfg.CHECKPOINT))
        self.raw.to(self.device)
        if o.channels_last:
            self.raw.to(memory_format=torch.channels_last)
        if o.checkpoint_activations:
            dev.checkpoint_blocks(self.raw, self.ir)
        net: nn.Module = self.raw
        if self.d.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(self.raw, device_ids=ids)
        self.net = torch.compile(net) if o.compile else net
        self.opt = torch.optim.SGD(self.raw.parameters(), lr=r.lr, momentum=r.momentum,
                                   weight_decay=r.weight_decay)
        self.schedule = Schedule(r.lr, c.milestones, r.gamma, r.warmup_lr, r.warmup_until_error)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=o.amp == "fp16")
        self.autocast = dev.autocast(o.amp, self.device)
        self.meter = Meter(self.device)
        self.history: list[dict[str, Any]] = []
        self.elapsed0, self.start = 0.0, 0
        torch.manual_seed(mix_seed(r.seed, self.d.rank, 3))
        random.seed(mix_seed(r.seed, self.d.rank, 4))
        np.random.seed(mix_seed(r.seed, self.d.rank, 5) % 2**32)
        if self.ckpt is not None:
            self._restore(self.ckpt)

    def _restore(self, ck: dict[str, Any]) -> None:
        self.opt.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        if ck.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ck["scaler"])
        self.meter.load_state_dict(ck["meter"])
        self.history = list(ck["history"])
        self.elapsed0 = float(ck["elapsed_s"])
        self.start = int(ck["data"]["iteration"])
        self.data.restore(ck["data"])
        rngs = ck["rng"]
        if len(rngs) == self.d.world:
            ckpt_io.set_rng_state(rngs[self.d.rank], self.device)
        else:
            self.echo(f"note: the run had {len(rngs)} processes, now {self.d.world}: random "
                      "states are re-seeded (only dropout-like layers notice)")

    def _write_config(self) -> None:
        data = self.config.to_dict()
        if self.ckpt is not None:
            data["resumed_at"] = int(self.ckpt["data"]["iteration"])
        atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def _header(self) -> None:
        c, r = self.config, self.recipe
        params = sum(p.numel() for p in self.raw.parameters())
        self.echo(f"{self.spec.name} ({params:,} parameters) on {self.images.describe()}")
        ms = ", ".join(map(str, c.milestones)) or "none"
        self.echo(
            f"{c.iterations} iterations ({c.iterations / c.steps_per_epoch:.1f} epochs of "
            f"{c.steps_per_epoch}), batch {r.batch_size}, lr {r.lr:g} x{r.gamma:g} at {ms}, "
            f"momentum {r.momentum:g}, weight decay {r.weight_decay:g}"
            + (f", warm-up at lr {r.warmup_lr:g} until training error < "
               f"{100 * r.warmup_until_error:g}%" if r.warmup_lr else "")
        )
        per_rank = r.batch_size // self.d.world
        plan = dev.memory_plan(self.ir, self.raw, per_rank, self.opts.amp, self.device,
                               self.data.nbytes)
        mem = f"memory about {dev.fmt_bytes(plan.need(self.opts.checkpoint_activations))}"
        if plan.free is not None:
            mem += f" of {dev.fmt_bytes(plan.free)} free"
        procs = f" x {self.d.world} processes" if self.d.enabled else ""
        extras = [f"amp {self.opts.amp}"] if self.opts.amp != "off" else []
        extras += [name for name, on in (("channels-last", self.opts.channels_last),
                   ("compile", self.opts.compile),
                   ("checkpoint-activations", self.opts.checkpoint_activations)) if on]
        extra = f" ({', '.join(extras)})" if extras else ""
        self.echo(f"device {self.device}{procs}{extra}, {mem}; run folder {self.dir}")
        warning = dev.memory_warning(plan, per_rank, self.opts.amp,
                                     self.opts.checkpoint_activations)
        if warning and self.d.is_main:
            click.echo(warning, err=True)

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        self._model()
        if self.d.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            ckpt_io.remove_stale_temporaries(self.dir)
        if self.ckpt is not None and self.ckpt.get("complete"):
            self.echo(f"{self.dir} is already complete ({self.start} iterations)")
            if self.d.is_main and self.history:
                self._curves()
            return 0
        if self.d.is_main:
            self._write_config()
        self._header()
        if self.ckpt is not None:
            self.echo(f"resuming at iteration {self.start}")
        self.reporter = make_reporter(self.opts.quiet, self.d.is_main)
        try:
            return self._loop()
        except NonFiniteLoss as exc:
            self._finish_files()
            last = self._last_saved
            kept = (f"the last good checkpoint {self.dir / cfg.CHECKPOINT} (iteration {last}) "
                    "is kept" if last is not None else "no checkpoint had been written yet")
            raise TrainError(
                f"the training loss became {exc} between iterations {self._last_read + 1} and "
                f"{self._it} (lr {self.schedule.lr(self._it - 1):g}); training stopped and "
                f"{kept}. A new run with a lower --lr (or --amp off) usually helps"
            ) from None
        finally:
            self.reporter.close()

    def _loop(self) -> int:
        c = self.config
        kill = os.environ.get(SIGNAL_ENV, "")
        kill_sig, _, kill_at = kill.partition("@")
        nan_at = int(os.environ.get(NAN_ENV, "0") or 0)
        self._last_saved = self.start if self.ckpt is not None else None
        self._it = self._last_read = it = self.start
        self.session0 = self.mark = time.monotonic()
        self.last_curves = self.mark
        self.reporter.start(c.iterations, it)
        self.net.train()
        stopping = False
        while it < c.iterations:
            lr = self.schedule.lr(it)
            self._step(it, lr, nan=it + 1 == nan_at)
            it = self._it = it + 1
            boundary = it % c.sync_every == 0
            eval_due = it % c.eval_every == 0 or it == c.iterations
            ckpt_due = it % c.checkpoint_every == 0 or it == c.iterations
            local_stop = self.stop.signum is not None and (boundary or not self.d.enabled)
            if boundary or eval_due or ckpt_due or local_stop:
                now = time.monotonic()
                stopping = self.meter.read(self.d.sum, local_stop, self.d.world, now - self.mark)
                self.mark, self._last_read = now, it
            stats = None
            if boundary:
                loss, err, ips = self.meter.take_window()
                stats = {"loss": loss, "error": err, "lr": lr, "images_per_s": ips}
                if self.schedule.observe(it, err):
                    self.reporter.note(f"warm-up over at iteration {it} (training error "
                                       f"{100 * err:.1f}%): lr {self.schedule.lr(it):g} from now")
            if eval_due:
                self._evaluate(it, lr)
            self.reporter.step(it, stats)
            if ckpt_due or stopping:
                self._save(it, complete=it == c.iterations)
            if kill_at and int(kill_at) == it:
                os.kill(os.getpid(), getattr(signal, kill_sig))
            if stopping:
                break
            if self.d.is_main and time.monotonic() - self.last_curves > CURVES_EVERY_S:
                self._curves()
        self.reporter.close()
        self._finish_files()
        if stopping:
            signum = self.stop.signum or signal.SIGTERM
            name = signal.Signals(signum).name
            if self.d.is_main:  # even with --quiet
                click.echo(f"stopped by {name} after iteration {it}: checkpoint saved to "
                           f"{self.dir / cfg.CHECKPOINT}; continue with: resgraph train "
                           f"{self.opts.spec} --out {self.dir} --resume")
            return 128 + signum
        self._check_replicas()
        last = self.history[-1] if self.history else None
        if last is not None:
            self.echo(f"done: test error {100 * last['test_error']:.2f}% after {it} iterations "
                      f"({last['time_s']:.0f} s); results in {self.dir}")
        return 0

    def _step(self, it: int, lr: float, nan: bool) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y = self.data.train_batch(it)
        try:
            with self.autocast():
                out = self.net(x)
                loss = F.cross_entropy(out, y)
        except Exception as exc:
            if self.opts.compile and it == self.start:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                why = " ".join(lines[:2])[:300]
                raise TrainError(f"--compile failed ({type(exc).__name__}: {why}); run "
                                 "without --compile") from None
            raise
        if nan:
            loss = loss * float("nan")
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.meter.add(loss.detach(), (out.detach().argmax(1) != y).sum(), len(y))

    def _evaluate(self, it: int, lr: float) -> None:
        t0 = time.monotonic()
        train_loss, train_err, ips = self.meter.take_period()
        if self.d.is_main:
            test_loss, test_err = evaluate(self.raw, self.data.eval_batches("test"), self.autocast)
            val_loss = val_err = None
            if self.data.validation is not None:
                val_loss, val_err = evaluate(self.raw, self.data.eval_batches("val"), self.autocast)
            row = {
                "epoch": round(it / self.config.steps_per_epoch, 4), "iteration": it, "lr": lr,
                "train_loss": train_loss, "train_error": train_err, "test_loss": test_loss,
                "test_error": test_err, "val_loss": val_loss, "val_error": val_err,
                "images_per_s": ips, "time_s": self._elapsed(),
            }
            self.history.append(row)
            plots.write_metrics(self.dir / "metrics.csv", self.history)
            self.reporter.row(row)
        self.mark += time.monotonic() - t0  # evaluation time is not training time

    def _elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.session0

    def _save(self, it: int, complete: bool) -> None:
        t0 = time.monotonic()
        rngs = self.d.gather(ckpt_io.rng_state(self.device))
        if self.d.is_main:
            ckpt_io.save_atomic({
                "format": ckpt_io.FORMAT,
                "model": self.raw.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": rngs,
                "data": self.data.position(it),
                "meter": self.meter.state_dict(),
                "history": self.history,
                "data_mean": self.data.mean.cpu(),
                "elapsed_s": self._elapsed(),
                "config": self.config.to_dict(),
                "complete": complete,
            }, self.dir / cfg.CHECKPOINT)
        self._last_saved = it
        self.mark += time.monotonic() - t0

    def _curves(self) -> None:
        title = f"{self.spec.name} on {self.recipe.dataset}"
        plots.write_curves(self.dir / "curves.png", self.history, title)
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
            import json

            atomic_write_text(self.dir / "ddp_check.json", json.dumps(
                {"world_size": self.d.world, "param_sha256": digests, "identical": same},
                indent=2) + "\n")
            self.echo(f"{self.d.world} processes end with identical parameters: "
                      f"{'yes' if same else 'NO'}")
        if not same:
            raise TrainError("the processes ended with different parameters (see ddp_check.json)")
