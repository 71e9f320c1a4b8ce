"""The arms of ``contrastkit reproduce supercon`` as config overlays of ``reproduce/configs/supercon.yaml``, the
training learning rates chosen by the search of :mod:`._supercon_search`, and the names shared by the experiment
(:mod:`.supercon`), its claims (:mod:`._supercon_claims`) and its presentation (:mod:`._supercon_report`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from contrastkit.reproduce.experiment import Arm

BASE = "supercon"
BASELINES = ("ce", "weighted_ce", "focal", "class_balanced")  # end to end with this loss; re-fit head: the same
SUPERCON_HEADS = {"supercon_ce": "ce", "supercon_weighted_ce": "weighted_ce", "supercon_focal": "focal",
                  "supercon_cb": "class_balanced"}  # fmt: skip
RANDOM_INIT = "random_init"  # the seed's untrained encoder + the weighted-CE head: the anchor of the baselines
METHODS = (*BASELINES, *SUPERCON_HEADS, RANDOM_INIT)
ENCODERS = ("stage1", *BASELINES)  # what is trained, and whose learning rate is searched
PROFILES = ("exp10", "exp50", "exp100", "ham")
PRIMARY_PROFILE = "ham"
HAM_SCALE = {"full": 0.5, "quick": 0.1}
EXP_N_MAX = {"full": 1000, "quick": 300}
EPOCHS = {"full": 100, "quick": 2}  # stage 1 and every baseline: the same passes over the training images
TEST_PER_CLASS = {"full": 1000, "quick": 200}
BASE_LR = 0.05  # SGD at batch 256 (Khosla et al.'s 0.05)
LR_SCALES = (0.5, 1.0, 2.0)  # the search grid, the same for every encoder
LR_SEARCH_FILE = "supercon_lr_search.yaml"
DESCRIPTIONS = {
    "ce": "CE end to end", "weighted_ce": "weighted CE end to end", "focal": "focal end to end",
    "class_balanced": "class-balanced CE end to end", "supercon_ce": "SupCon -> CE head",
    "supercon_weighted_ce": "SupCon -> weighted-CE head", "supercon_focal": "SupCon -> focal head",
    "supercon_cb": "SupCon -> class-balanced head", RANDOM_INIT: "random-init encoder -> weighted-CE head",
}  # fmt: skip


def lr_search_path() -> Path:
    """Where :mod:`._supercon_search` writes its record (shipped with the package)."""
    return Path(str(resources.files("contrastkit.reproduce") / "configs" / LR_SEARCH_FILE))


def load_lr_search(path: Path | None = None) -> dict[str, Any]:
    """``{profile: record}`` of the learning-rate search (empty when it has not been run)."""
    import yaml

    path = path or lr_search_path()
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict) or not all(isinstance(r, dict) and "chosen" in r for r in loaded.values()):
        raise ValueError(f"{path} is not a learning-rate search record; rerun python -m {__package__}._supercon_search")
    return loaded


def profile_counts(profile: str, quick: bool) -> list[int]:
    """Training images per class (label order) of ``profile``: ``expR`` is ``n_max * R^(-c/9)`` over 10 classes,
    ``ham`` the HAM10000 profile over 7 classes, scaled."""
    from contrastkit.data import HAM10000_COUNTS, long_tailed_counts, scale_profile

    budget = "quick" if quick else "full"
    if profile == "ham":
        return scale_profile(HAM10000_COUNTS, HAM_SCALE[budget])
    if profile.startswith("exp") and profile[3:].isdigit():
        return long_tailed_counts(EXP_N_MAX[budget], 10, float(profile[3:]))
    raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")


def _data(profile: str, budget: str) -> list[str]:
    counts = profile_counts(profile, budget == "quick")
    return [f"data.class_counts=[{', '.join(map(str, counts))}]", f"data.eval_per_class={TEST_PER_CLASS[budget]}"]


def encoder_overrides(encoder: str, profile: str, lr: float) -> tuple[list[str], list[str]]:
    """``(full, quick additions)`` overrides that train ``encoder`` (``stage1`` = SupCon, or a baseline's loss) on
    ``profile`` at learning rate ``lr`` for the epoch budget."""
    if encoder == "stage1":
        method = ["method.name=supercon", "method.temperature=0.1", "method.base_temperature=0.07"]
    elif encoder in BASELINES:
        method = ["method.name=supervised", f"method.loss={encoder}"]
    else:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {ENCODERS}")
    full = [*method, *_data(profile, "full"), f"trainer.max_epochs={EPOCHS['full']}", f"optim.lr={lr!r}"]
    return full, [*_data(profile, "quick"), f"trainer.max_epochs={EPOCHS['quick']}"]


def _lr(search: dict[str, Any], encoder: str, profile: str) -> dict[str, Any]:
    record = search.get(profile, {})
    scale = record.get("chosen", {}).get(encoder)
    if scale is not None:  # a --quick search is a smoke test: its choice does not count as searched
        source = "search (quick)" if record.get("quick") else "search"
        return {"lr": BASE_LR * float(scale), "lr_scale": float(scale), "lr_source": source}
    return {"lr": BASE_LR, "lr_scale": 1.0, "lr_source": "not searched (base lr)"}


def _arm(method: str, profile: str, search: dict[str, Any]) -> Arm:
    setting: dict[str, Any] = {"method": method, "profile": profile}
    if method in SUPERCON_HEADS:
        lr = _lr(search, "stage1", profile)
        setting.update(kind="supercon", head_loss=SUPERCON_HEADS[method], **lr)
        setting["stage1"], setting["stage1_quick"] = encoder_overrides("stage1", profile, lr["lr"])
    elif method == RANDOM_INIT:  # the weighted-CE baseline's config and initial weights, never trained
        setting.update(kind="random_init", head_loss="weighted_ce", train=False)
        setting["overrides"], setting["overrides_quick"] = encoder_overrides("weighted_ce", profile, BASE_LR)
    else:
        lr = _lr(search, method, profile)
        setting.update(kind="baseline", head_loss=method, **lr)
        setting["overrides"], setting["overrides_quick"] = encoder_overrides(method, profile, lr["lr"])
    return Arm(f"{method}-{profile}", setting)


LR_SEARCH = load_lr_search()  # read once: the arms and the run's artifact record the same search
ARMS = [_arm(method, profile, LR_SEARCH) for profile in PROFILES for method in METHODS]
