"""The engine: accumulation equals one big batch, clipping bounds the update, hooks and callbacks at the right
steps, exact resume from ``state_dict``, the time budget, and a non-finite loss stopping before the optimiser."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import contrastkit.train.engine as engine_module
from contrastkit.data import Batch, TensorSource
from contrastkit.losses import nt_xent
from contrastkit.methods import EpochContext, FitContext, StepContext, SupervisedClassifier
from contrastkit.train.engine import Engine, EngineState, NonFiniteLossError, StepCallback, step_generator
from contrastkit.train.monitors import TrainModule
from contrastkit.train.runtime import LocalRuntime, make_runtime


class LinearBackbone(nn.Module):
    """``[B, 1, 2, 2] -> [B, 3]``: a linear map of the flattened pixels (with an optional dropout before it)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_features = 3
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(x.flatten(1)))


def classifier(seed: int = 0) -> SupervisedClassifier:
    """A float64 linear classifier on a linear backbone: its focal loss is a mean over rows (batch-independent)."""
    torch.manual_seed(seed)
    return SupervisedClassifier(LinearBackbone(), None, 3, loss="focal").double()


def labelled_source(n: int = 32, **kwargs: Any) -> TensorSource:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64)
    return TensorSource(x, torch.randint(0, 3, (n,), generator=g), **kwargs)


def sgd(model: nn.Module, lr: float = 0.1, momentum: float = 0.9) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=1e-3)


def weights(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


class Recorder(nn.Module):
    """A method with every hook: it records what the engine hands it. Its views add noise drawn from the
    engine's generator; its embedding has a dropout (so eval mode shows in the features)."""

    def __init__(self, nan_at_call: int | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        self.backbone = LinearBackbone(dropout).double()
        self.nan_at_call = nan_at_call
        self.calls = 0
        self.fit_starts: list[FitContext] = []
        self.epochs: list[dict[str, Any]] = []
        self.step_ends: list[StepContext] = []

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor]:
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        return (images + 0.1 * noise,)

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        self.calls += 1
        (view,) = batch.views
        out = self.backbone(view)
        loss = (out - 1.0).pow(2).mean()
        if self.calls == self.nan_at_call:
            loss = loss * float("nan")
        return {"loss": loss, "embeddings": out.detach()}

    def on_fit_start(self, ctx: FitContext) -> None:
        self.fit_starts.append(ctx)

    def on_epoch_start(self, ctx: EpochContext) -> None:
        source = self.fit_starts[-1].source  # on_fit_start came first
        was_training = self.training
        self.eval()
        with torch.no_grad():
            expected = self.embed(source.images).float()
        self.train(was_training)
        self.epochs.append(
            {
                "epoch": ctx.epoch,
                "step": ctx.step,
                "features": ctx.features(),
                "chunked": ctx.features(batch_size=7),
                "pixels": ctx.features(lambda x: x.flatten(1)),
                "expected": expected,
                "pixels_expected": source.images.flatten(1).float(),
                "training_after": self.training,
            }
        )

    def on_step_end(self, ctx: StepContext) -> None:
        self.step_ends.append(ctx)


class Counter(StepCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.ends = 0

    def on_step_end(self, engine: Engine, outputs: dict[str, Tensor]) -> None:
        self.steps.append(engine.state.step)
        self.losses.append(float(outputs["loss"]))
        assert not outputs["loss"].requires_grad

    def on_train_end(self, engine: Engine) -> None:
        self.ends += 1


# ----------------------------------------------------------------------------------- accumulation, clipping


def test_accumulating_two_batches_equals_one_step_on_the_double_batch() -> None:
    """Batches sA + a of size B are the rows of global batch s of size A B (the epoch order does not depend on the
    batch size), and each batch's loss is divided by A: in float64 the weights agree to rounding, across an epoch
    boundary (32 items: 4 steps per epoch, 6 steps)."""
    source = labelled_source(32)
    accumulated, big, small = classifier(), classifier(), classifier()
    a = Engine(accumulated, source, [sgd(accumulated)], batch_size=4, seed=3, max_steps=6, accumulate_grad_batches=2)
    b = Engine(big, source, [sgd(big)], batch_size=8, seed=3, max_steps=6)
    assert a.steps_per_epoch == b.steps_per_epoch == 4
    a.run(), b.run()
    assert a.state.samples_seen == b.state.samples_seen == 48
    assert max_diff(weights(accumulated), weights(classifier())) > 1e-3  # it trained
    for key, value in weights(big).items():
        torch.testing.assert_close(weights(accumulated)[key], value, rtol=1e-12, atol=1e-13, msg=key)
    # negative control: 6 steps on batches of 4 without accumulation end elsewhere
    Engine(small, source, [sgd(small)], batch_size=4, seed=3, max_steps=6).run()
    assert max_diff(weights(small), weights(big)) > 1e-4


def _gradient_of_first_batch(model: SupervisedClassifier, source: TensorSource, batch_size: int) -> list[Tensor]:
    batch = source.fetch(source.batch_indices(0, 0, batch_size, seed=0))
    model.zero_grad()
    model.training_step(batch)["loss"].backward()
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("clip", [0.01, 1e3])
def test_gradient_clipping_bounds_the_update(clip: float) -> None:
    source = labelled_source(16)
    reference = classifier()
    reference.classifier.linear.weight.data.mul_(300)  # a large gradient
    gradient = _gradient_of_first_batch(reference, source, 8)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in gradient))
    assert 0.01 < norm < 1e3
    model = classifier()
    model.load_state_dict(reference.state_dict())
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is minus the (clipped) gradient
    Engine(model, source, [optimizer], batch_size=8, seed=0, max_steps=1, gradient_clip_norm=clip).run()
    update = [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]
    for u, g in zip(update, gradient, strict=True):
        torch.testing.assert_close(u, -g * min(1.0, clip / (norm + 1e-6)), rtol=1e-9, atol=1e-12)
    size = math.sqrt(sum(float(u.pow(2).sum()) for u in update))
    assert size <= min(clip, norm) + 1e-9
    if clip < norm:
        assert size == pytest.approx(clip, rel=1e-6)


# ------------------------------------------------------------------------------------------ hooks, callbacks


def test_hooks_and_callbacks_are_called_at_the_right_steps() -> None:
    """20 items in batches of 4: 5 steps per epoch; 12 steps give epochs starting at steps 0, 5, 10."""
    torch.manual_seed(0)
    method, counter = Recorder(), Counter()
    source = labelled_source(20)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    engine = Engine(method, source, [optimizer], batch_size=4, seed=5, max_steps=12, callbacks=[counter])
    state = engine.run()
    assert isinstance(state, EngineState) and state.step == 12 and state.samples_seen == 48

    (fit,) = method.fit_starts
    assert (fit.source, fit.seed, fit.batch_size, fit.steps_per_epoch, fit.max_steps) == (source, 5, 4, 5, 12)
    assert (fit.device, fit.precision, fit.world_size, fit.rank) == (torch.device("cpu"), "32", 1, 0)

    assert [(e["epoch"], e["step"]) for e in method.epochs] == [(0, 0), (1, 5), (2, 10)]
    for e in method.epochs:
        assert e["features"].shape == (20, 3) and e["features"].dtype == torch.float32
        torch.testing.assert_close(e["features"], e["expected"])  # embed of every item, in index order, eval mode
        torch.testing.assert_close(e["chunked"], e["expected"])
        torch.testing.assert_close(e["pixels"], e["pixels_expected"])
        assert e["training_after"]  # train mode is back
    assert not torch.allclose(method.epochs[0]["features"], method.epochs[1]["features"])  # the current weights

    assert [c.step for c in method.step_ends] == list(range(1, 13))
    assert [c.progress for c in method.step_ends] == [s / 12 for s in range(1, 13)]
    assert all(len(c.batch) == 4 and c.batch.images is None and len(c.batch.views) == 1 for c in method.step_ends)
    assert counter.steps == list(range(1, 13)) and counter.ends == 1
    assert counter.losses == [float(c.outputs["loss"]) for c in method.step_ends]
    assert method.calls == 12


def test_the_views_come_from_the_step_generator_of_the_global_batch() -> None:
    method = Recorder()
    source = labelled_source(20)
    engine = Engine(method, source, [torch.optim.SGD(method.parameters(), lr=0.0)], batch_size=4, seed=5, max_steps=7)
    engine.run()
    batch = method.step_ends[6].batch  # step 7 = epoch 1, batch 1 (global batch 6)
    raw = source.fetch(source.batch_indices(1, 1, 4, seed=5))
    assert batch.indices is not None and raw.indices is not None and torch.equal(batch.indices, raw.indices)
    assert raw.images is not None and batch.labels is not None and torch.equal(batch.labels, raw.labels)
    (expected,) = method.make_views(raw.images, generator=step_generator(5, 6))
    torch.testing.assert_close(batch.views[0], expected, rtol=0, atol=0)


def test_resume_from_state_dict_equals_an_uninterrupted_run() -> None:
    """Adam, a cosine learning-rate factor and random views; stopped at step 7 (mid-epoch), resumed to 12. No
    dropout: data order and views depend on (seed, step) only, so the global generator's state does not matter."""

    def factor(progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress))

    def make(method: Recorder) -> Engine:
        optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
        return Engine(method, labelled_source(20), [optimizer], batch_size=4, seed=5, max_steps=12, lr_factor=factor)

    torch.manual_seed(0)
    full = Recorder(dropout=0.0)
    start = weights(full)
    make(full).run()

    first = Recorder(dropout=0.0)
    first.load_state_dict(start)
    engine = make(first)
    engine.start()
    for _ in range(7):
        engine.step()
    saved, saved_weights = engine.state_dict(), weights(first)
    assert saved["step"] == 7 and saved["samples_seen"] == 28

    resumed = Recorder(dropout=0.0)
    resumed.load_state_dict(saved_weights)
    again = make(resumed)
    again.load_state_dict(saved)
    assert again.optimizers[0].param_groups[0]["lr"] != 1e-2  # the saved (scheduled) rate ...
    assert again.base_lrs == [1e-2]  # ... but the schedule keeps the configured base
    assert again.run().step == 12
    for key, value in weights(full).items():
        assert torch.equal(weights(resumed)[key], value), key
    assert [e["step"] for e in resumed.epochs] == [10]  # a resume mid-epoch calls on_epoch_start at the next one
    assert len(resumed.fit_starts) == 1 and [c.step for c in resumed.step_ends] == list(range(8, 13))
    with pytest.raises(ValueError, match="the state holds 2 optimisers, the engine has 1"):
        make(Recorder()).load_state_dict({**saved, "optimizers": saved["optimizers"] * 2})


def _half_second_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock for the engine: every read advances it by 0.5 s (it is read at the start and the end of every
    step)."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    monkeypatch.setattr(engine_module, "time", SimpleNamespace(perf_counter=clock))


def test_a_time_budget_stops_the_run_and_drives_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: every step takes 0.5 s, so a 2 s budget is 4 steps with progress 0, 1/4, 1/2, 3/4."""
    _half_second_steps(monkeypatch)
    progress: list[float] = []

    def factor(p: float) -> float:
        progress.append(p)
        return 1.0 - p

    model = classifier()
    engine = Engine(model, labelled_source(32), [sgd(model)], batch_size=4, seed=0, time_budget_s=2.0, lr_factor=factor)
    state = engine.run()
    assert state.step == 4 and state.elapsed == pytest.approx(2.0) and engine.progress >= 1.0
    assert progress == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert engine.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)


@pytest.mark.parametrize(
    ("max_steps", "budget", "steps", "progress"),
    [
        (3, 2.0, 3, [0.0, 1 / 3, 2 / 3]),  # the step limit first: progress = steps / 3 (> elapsed / 2 = steps / 4)
        (6, 2.0, 4, [0.0, 1 / 4, 1 / 2, 3 / 4]),  # the budget first: progress = elapsed / 2 (> steps / 6)
        (4, 2.0, 4, [0.0, 1 / 4, 1 / 2, 3 / 4]),  # both at once
    ],
)
def test_a_step_limit_and_a_time_budget_stop_at_whichever_comes_first(
    monkeypatch: pytest.MonkeyPatch, max_steps: int, budget: float, steps: int, progress: list[float]
) -> None:
    """The fake clock of the budget test: every step takes 0.5 s, so a 2 s budget alone is 4 steps."""
    _half_second_steps(monkeypatch)
    seen: list[float] = []

    def factor(p: float) -> float:
        seen.append(p)
        return 1.0 - p

    model = classifier()
    engine = Engine(
        model, labelled_source(32), [sgd(model)], batch_size=4, seed=0, max_steps=max_steps, time_budget_s=budget,
        lr_factor=factor,
    )  # fmt: skip
    state = engine.run()
    assert state.step == steps and state.elapsed == pytest.approx(0.5 * steps) and engine.progress == 1.0
    assert seen == pytest.approx(progress)


# ------------------------------------------------------------------------------------------ non-finite loss


def test_a_nan_loss_raises_before_any_optimiser_step() -> None:
    method = Recorder(nan_at_call=1)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9)
    before, counter = weights(method), Counter()
    engine = Engine(method, labelled_source(20), [optimizer], batch_size=4, seed=0, max_steps=3, callbacks=[counter])
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at step 0 \(epoch 0\)"):
        engine.run()
    assert all(torch.equal(v, before[k]) for k, v in weights(method).items())
    assert optimizer.state_dict()["state"] == {}  # no momentum buffer: the optimiser never stepped
    assert engine.state.step == 0 and counter.steps == [] and method.step_ends == []


def test_a_nan_in_the_second_accumulated_batch_stops_the_step() -> None:
    """Steps 1-2 train; the first batch of step 3 back-propagates, its second is NaN: no update of step 3."""
    method = Recorder(nan_at_call=6)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    engine = Engine(
        method, labelled_source(40), [optimizer], batch_size=4, seed=0, max_steps=4, accumulate_grad_batches=2
    )
    engine.start()
    engine.step(), engine.step()
    after_two = weights(method)
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        engine.step()
    assert all(torch.equal(v, after_two[k]) for k, v in weights(method).items()) and engine.state.step == 2


class _DivergedEmbeddings(Recorder):
    """The losses refuse NaN embeddings with NonFiniteError (a ValueError): the engine reports the divergence."""

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        (view,) = batch.views
        z = self.backbone(view) * float("nan")
        return {"loss": nt_xent(z, z, 0.5)}


def test_a_loss_refusing_nan_embeddings_is_a_non_finite_loss() -> None:
    method = _DivergedEmbeddings()
    before = weights(method)
    engine = Engine(
        method, labelled_source(20), [torch.optim.SGD(method.parameters(), lr=0.1)], batch_size=4, seed=0, max_steps=2
    )
    with pytest.raises(NonFiniteLossError, match="the loss became nan"):
        engine.run()
    assert all(torch.equal(v, before[k]) for k, v in weights(method).items())


# ----------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_steps": None}, "set max_steps, time_budget_s or both"),
        ({"batch_size": 32}, "the 20 training items give no full batch of 32 x 1 accumulated"),
        ({"accumulate_grad_batches": 6}, "the 20 training items give no full batch of 4 x 6 accumulated"),
        ({"optimizers": []}, "the engine needs at least one optimiser"),
    ],
)
def test_bad_engine_arguments(kwargs: dict[str, Any], match: str) -> None:
    model = classifier()
    args: dict[str, Any] = {"optimizers": [sgd(model)], "batch_size": 4, "seed": 0, "max_steps": 2, **kwargs}
    optimizers = args.pop("optimizers")
    with pytest.raises(ValueError, match=match.replace("(", r"\(")) as info:
        Engine(model, labelled_source(20), optimizers, **args)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- wrapper and runtime


def test_train_module_adds_a_stop_gradient_probe_and_forwards_the_method() -> None:
    method = Recorder(dropout=0.0)
    source = labelled_source(8)
    module = TrainModule(method, 3, sample=source.images[:2])  # a float32 probe on float64 features
    assert module.online_classifier is not None and module.online_classifier.in_features == 3
    assert module.on_epoch_start == method.on_epoch_start and module.on_fit_start == method.on_fit_start
    images = source.images[:4]
    torch.testing.assert_close(module.embed(images), method.embed(images))
    (view,) = module.make_views(images, generator=step_generator(0, 0))
    batch = source.fetch(torch.arange(4)).replace(images=None, views=(view,))
    out = module.training_step(batch)
    assert set(out) >= {"total", "loss", "online_linear_loss", "online_linear_train_top1"}
    torch.testing.assert_close(out["total"].detach(), out["loss"] + out["online_linear_loss"])
    out["total"].backward()
    with_probe = [p.grad.clone() for p in method.parameters() if p.grad is not None]
    method.zero_grad()
    method.calls = 0
    method.training_step(batch)["loss"].backward()
    alone = [p.grad for p in method.parameters() if p.grad is not None]
    assert len(with_probe) == len(alone) == 2
    for a, b in zip(with_probe, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the probe's gradient never reaches the method
    assert module.online_classifier.weight.grad is not None
    assert TrainModule(method, None).online_classifier is None
    with pytest.raises(ValueError, match="the online probe needs a sample batch"):
        TrainModule(method, 3)


def test_one_process_gets_the_local_runtime() -> None:
    runtime = make_runtime("cpu", devices=1, num_nodes=1, strategy="auto", precision="32")
    assert isinstance(runtime, LocalRuntime)
    assert (runtime.device, runtime.precision, runtime.world_size, runtime.rank) == (torch.device("cpu"), "32", 1, 0)
    assert runtime.broadcast(7) == 7 and runtime.is_global_zero
    assert LocalRuntime("cpu", "bf16").precision == "bf16"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="trainer.accelerator=cuda but no CUDA device is visible"):
            make_runtime("cuda")
