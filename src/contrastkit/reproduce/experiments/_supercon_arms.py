"""The arms of ``contrastkit reproduce supercon`` as config overlays of ``reproduce/configs/supercon.yaml``, and the
names shared by the experiment (:mod:`.supercon`) and its presentation (:mod:`._supercon_report`)."""

from __future__ import annotations

from typing import Any

from contrastkit.reproduce.experiment import Arm

BASE = "supercon"
BASELINES = ("ce", "weighted_ce", "focal", "class_balanced")
SUPERCON_ARMS: dict[str, dict[str, Any]] = {
    "supercon": {"stage2_loss": "ce", "freeze_encoder": True},
    "supercon_focal": {"stage2_loss": "focal", "freeze_encoder": True},
    "supercon_cb": {"stage2_loss": "class_balanced", "freeze_encoder": True},
    "supercon_ft": {"stage2_loss": "focal", "freeze_encoder": False},
}
CLAIMED = ("supercon", "supercon_focal")
METHODS = (*BASELINES, *SUPERCON_ARMS)
PROFILES = ("exp10", "exp50", "exp100", "ham")
HAM_SCALE = {"full": 0.5, "quick": 0.1}
EXP_N_MAX = {"full": 1000, "quick": 300}
EPOCHS = {"full": 20, "quick": 6}
STAGE1_EPOCHS = {"full": 13, "quick": 4}  # round(2 E / 3); stage 2 gets the rest
TEST_PER_CLASS = {"full": 1000, "quick": 200}
CLAIM_METRICS = (("macro_f1", "macro-F1"), ("auc_macro_ovr", "macro OvR AUC"))
DESCRIPTIONS = {
    "supercon": "SuperCon (SupCon -> CE on the frozen encoder)",
    "supercon_focal": "SuperCon-focal (SupCon -> focal on the frozen encoder)",
}


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


def _epochs(epochs: int) -> list[str]:
    """Train ``epochs`` passes with one warm-up epoch."""
    return [f"trainer.max_epochs={epochs}", f"schedule.warmup_fraction={1 / epochs!r}"]


def _data(profile: str, budget: str) -> list[str]:
    counts = profile_counts(profile, budget == "quick")
    return [f"data.class_counts=[{', '.join(map(str, counts))}]", f"data.eval_per_class={TEST_PER_CLASS[budget]}"]


def _arm(method: str, profile: str) -> Arm:
    setting: dict[str, Any] = {"method": method, "profile": profile}
    if method in BASELINES:
        setting["overrides"] = ["method.name=supervised", f"method.loss={method}", *_data(profile, "full"),
                                *_epochs(EPOCHS["full"])]  # fmt: skip
        setting["overrides_quick"] = [*_data(profile, "quick"), *_epochs(EPOCHS["quick"])]
        return Arm(f"{method}-{profile}", setting)
    stage2 = SUPERCON_ARMS[method]
    setting.update(stage2)
    setting["stage1"] = ["method.name=supercon", "method.temperature=0.1", "method.base_temperature=0.07",
                         *_data(profile, "full"), *_epochs(STAGE1_EPOCHS["full"])]  # fmt: skip
    setting["stage1_quick"] = [*_data(profile, "quick"), *_epochs(STAGE1_EPOCHS["quick"])]
    setting["overrides"] = [
        "method.name=supervised", f"method.loss={stage2['stage2_loss']}",
        f"method.freeze_encoder={str(stage2['freeze_encoder']).lower()}", *_data(profile, "full"),
        *_epochs(EPOCHS["full"] - STAGE1_EPOCHS["full"]),
    ]  # fmt: skip
    setting["overrides_quick"] = [*_data(profile, "quick"), *_epochs(EPOCHS["quick"] - STAGE1_EPOCHS["quick"])]
    return Arm(f"{method}-{profile}", setting)


ARMS = [_arm(method, profile) for profile in PROFILES for method in METHODS]


def claim_text(profile: str, method: str, baseline: str, label: str) -> str:
    """The text of one claim; the summary tables find a claim's verdict by this text."""
    return f"{profile}: {DESCRIPTIONS[method]} beats {baseline} on {label}"
