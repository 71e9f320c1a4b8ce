r"""ARIEL (Feng, Jing, Zhu, Tong, "Adversarial Graph Contrastive Learning with Information Regularization",
WWW 2022): GRACE on sampled subgraphs plus an adversarial view and an information regulariser.

Each step takes a node-induced subgraph ``(x, A)`` (:class:`contrastkit.data.GraphSource` with ``data.batch_size``
= ARIEL's ``sample_size``), draws GRACE's two views and, when ``eps_t > 0``, an adversarial graph
``(x_adv, A_adv) = PGD(x, A)`` (:func:`contrastkit.augment.pgd_graph_attack`) that maximises the contrastive loss
against view 1 with the encoder frozen. With ``u_k = g(f(view_k))``, ``u_0 = g(f(x, A))`` and
``s_ab = exp(cos(u_a, u_b) / tau)`` per node::

    L = L_nce(u_1, u_2) + lamb * R + eps_t * L_nce(u_1, g(f(x_adv, A_adv)))
    R = mean_i relu(2 s_12 - sg(s_10) - sg(s_20))                    info_reg_form="single_hinge" (code)
    R = mean_i relu(s_12 - sg(s_10)) + relu(s_12 - sg(s_20))         info_reg_form="two_hinges"
    eps_t = eps * gamma^floor((t + 1) / period)                        (t = 0-based step; gamma = 1: constant)

``L_nce`` is :func:`contrastkit.losses.grace_loss`; ``sg`` stops the gradient. ``u_0`` is computed only when
``lamb > 0``. The attack's budget is ``edge_budget_ratio`` x the undirected edges of the subgraph.

Switches (``ARIELConfig``): ``attack_variant: current`` (the default; ARIEL's code since April 2022: annealed raw
gradient edge steps, feature box 0.04, bisection tolerance 1e-3, no curriculum, S restricted to the upper
triangle) or ``www2022`` (the code of the WWW paper: sign steps, box 0.5, tolerance 1e-5, eps x 1.1 every 20
steps, an asymmetric S during the attack). A preset fills the five keys it governs unless they are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit.augment.graph_attack import DISCRETISATIONS, EDGE_STEPS, AdversarialGraph, pgd_graph_attack
from contrastkit.data.batch import Batch
from contrastkit.losses import grace_loss
from contrastkit.method_registry import (
    BuildContext,
    register_method,
    require_at_least,
    require_choice,
    require_greater,
    require_in_range,
)
from contrastkit.methods.grace import GRACE, GRACEConfig, grace_options

__all__ = [
    "ATTACK_MODEL_MODES",
    "ATTACK_VARIANTS",
    "INFO_REG_FORMS",
    "ARIEL",
    "ARIELConfig",
    "build_ariel",
    "information_regulariser",
]

ATTACK_VARIANTS: dict[str, dict[str, object]] = {
    "current": {"edge_step": "annealed_grad", "feature_box": 0.04, "bisection_tol": 1e-3, "curriculum_gamma": 1.0,
                "symmetric_attack": True},
    "www2022": {"edge_step": "sign", "feature_box": 0.5, "bisection_tol": 1e-5, "curriculum_gamma": 1.1,
                "symmetric_attack": False},
}  # fmt: skip
INFO_REG_FORMS = ("single_hinge", "two_hinges")
ATTACK_MODEL_MODES = ("eval", "train")


def information_regulariser(
    u1: Tensor, u2: Tensor, u0: Tensor, temperature: float, form: str = "single_hinge"
) -> Tensor:
    """ARIEL's regulariser (module docstring) of the projections ``u1, u2, u0`` ``[n, d]``; a scalar.

    ``s_ab = exp(cos(u_a, u_b) / tau)`` per node; ``s_10`` and ``s_20`` are detached, so the gradient reaches the
    two views only through ``s_12``. It is 0 exactly when ``s_12 <= (s_10 + s_20) / 2`` for every node
    (single hinge)."""
    if form not in INFO_REG_FORMS:
        raise ValueError(f"form must be one of {INFO_REG_FORMS}, got {form!r}")

    def score(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(nn.functional.cosine_similarity(a, b, dim=1) / temperature)

    s12, s10, s20 = score(u1, u2), score(u1, u0).detach(), score(u2, u0).detach()
    if form == "single_hinge":
        return torch.relu(2 * s12 - s10 - s20).mean()
    return (torch.relu(s12 - s10) + torch.relu(s12 - s20)).mean()


class ARIEL(GRACE):
    """ARIEL (module docstring) on a graph encoder with ``forward_dense`` (:class:`contrastkit.models.GCNEncoder`).

    Args beyond :class:`GRACE`'s: ``eps`` (weight of the adversarial term; 0 = GRACE on subgraphs), ``lamb``
    (weight of the regulariser), ``alpha`` / ``beta`` (edge / feature step), ``pgd_steps``,
    ``edge_budget_ratio``, ``feature_box``, ``bisection_tol``, ``edge_step``, ``symmetric_attack``,
    ``discretise`` / ``best_of_k``, ``curriculum_gamma`` / ``curriculum_period``, ``attack_model_mode`` and
    ``info_reg_form``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection_dim: int = 128,
        *,
        eps: float = 0.5,
        lamb: float = 0.0,
        alpha: float = 200.0,
        beta: float = 0.01,
        pgd_steps: int = 5,
        edge_budget_ratio: float = 0.2,
        feature_box: float = 0.04,
        bisection_tol: float = 1e-3,
        edge_step: str = "annealed_grad",
        symmetric_attack: bool = True,
        discretise: str = "single_draw",
        best_of_k: int = 20,
        curriculum_gamma: float = 1.0,
        curriculum_period: int = 20,
        attack_model_mode: str = "eval",
        info_reg_form: str = "single_hinge",
        **grace_kwargs: object,
    ) -> None:
        super().__init__(encoder, projection_dim, **grace_kwargs)  # type: ignore[arg-type]
        if not callable(getattr(encoder, "forward_dense", None)):
            raise ValueError("ARIEL needs an encoder with forward_dense(x, adj) (contrastkit.models.GCNEncoder)")
        for name, value, choices in (("edge_step", edge_step, EDGE_STEPS), ("discretise", discretise, DISCRETISATIONS),
                                     ("attack_model_mode", attack_model_mode, ATTACK_MODEL_MODES),
                                     ("info_reg_form", info_reg_form, INFO_REG_FORMS)):  # fmt: skip
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        self.eps, self.lamb, self.alpha, self.beta = float(eps), float(lamb), float(alpha), float(beta)
        self.pgd_steps, self.edge_budget_ratio = int(pgd_steps), float(edge_budget_ratio)
        self.feature_box, self.bisection_tol, self.edge_step = float(feature_box), float(bisection_tol), edge_step
        self.symmetric_attack, self.discretise, self.best_of_k = bool(symmetric_attack), discretise, int(best_of_k)
        self.curriculum_gamma, self.curriculum_period = float(curriculum_gamma), int(curriculum_period)
        self.attack_model_mode, self.info_reg_form = attack_model_mode, info_reg_form

    def adversarial_weight(self, step: int) -> float:
        """``eps_t = eps * gamma^floor((step + 1) / period)`` at the 0-based step ``step``."""
        return self.eps * self.curriculum_gamma ** ((step + 1) // self.curriculum_period)

    def adversarial_view(
        self, x: Tensor, edge_index: Tensor, view1: tuple[Tensor, Tensor], generator: torch.Generator
    ) -> AdversarialGraph:
        """PGD on the un-augmented subgraph ``(x [n, F], edge_index)`` against the projections of view 1
        ``(x1, e1)``, with the model frozen in ``attack_model_mode`` (the anchor is projected in that mode too, as
        the code does); an :class:`~contrastkit.augment.AdversarialGraph`."""
        from contrastkit.models.graph import dense_adjacency

        n = x.shape[0]
        adj = dense_adjacency(edge_index, n).to(x.dtype).clamp(max=1.0).fill_diagonal_(0.0)
        adj = torch.maximum(adj, adj.t())  # a graph given with one direction per edge is read as undirected
        budget = self.edge_budget_ratio * float(adj.triu(1).sum())

        def contrast(x_perturbed: Tensor, adj_perturbed: Tensor) -> Tensor:
            projected = self.projection_head(self.backbone.forward_dense(x_perturbed, adj_perturbed))
            return grace_loss(anchor, projected, self.temperature, chunk_size=self.chunk_size)

        modes = [m.training for m in self.modules()]
        self.train(self.attack_model_mode == "train")
        try:
            with torch.no_grad():
                anchor = self.project(*view1)
            return pgd_graph_attack(contrast, x, adj, budget=budget, steps=self.pgd_steps, alpha=self.alpha,
                                    beta=self.beta, feature_box=self.feature_box, edge_step=self.edge_step,
                                    bisection_tol=self.bisection_tol, symmetric=self.symmetric_attack,
                                    discretise=self.discretise, best_of_k=self.best_of_k,
                                    generator=generator)  # fmt: skip
        finally:
            for module, mode in zip(self.modules(), modes, strict=True):
                module.training = mode

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """Views, adversarial view and the ARIEL loss (module docstring); returns ``{"loss", "nce", "flips",
        "eps"}`` plus ``"adversarial_nce"`` and ``"info_reg"`` when they are computed."""
        generator = self.step_generator()
        (x1, e1), (x2, e2) = self.views(batch, generator)
        graph = batch.graph
        step = int(self.view_steps)
        u1, u2 = self.project(x1, e1), self.project(x2, e2)
        nce = grace_loss(u1, u2, self.temperature, chunk_size=self.chunk_size)
        out: dict[str, Tensor] = {"nce": nce.detach()}
        loss = nce
        if self.lamb > 0:
            with torch.no_grad():  # R stops the gradient at s_10 and s_20: u_0 needs no graph
                u0 = self.project(graph.x, graph.edge_index)
            regulariser = information_regulariser(u1, u2, u0, self.temperature, self.info_reg_form)
            loss = loss + self.lamb * regulariser
            out["info_reg"] = regulariser.detach()
        eps_t = self.adversarial_weight(step)
        flips = 0
        if eps_t > 0:
            adversarial = self.adversarial_view(graph.x, graph.edge_index, (x1, e1), generator)
            u_adv = self.projection_head(self.backbone.forward_dense(adversarial.x, adversarial.adj))
            adversarial_nce = grace_loss(u1, u_adv, self.temperature, chunk_size=self.chunk_size)
            loss = loss + eps_t * adversarial_nce
            out["adversarial_nce"] = adversarial_nce.detach()
            flips = adversarial.flips
        self.view_steps += 1
        out.update(loss=loss, flips=torch.tensor(float(flips)), eps=torch.tensor(eps_t))
        return out


@dataclass
class ARIELConfig(GRACEConfig):
    """``method: {name: ariel}``: ARIEL (:class:`ARIEL`). The keys left null take ``attack_variant``'s values."""

    name: str = "ariel"
    eps: float = 0.5
    lamb: float = 0.0
    alpha: float | None = None  # null: 200 (current) or 0.01 (www2022; the sign step's size)
    beta: float = 0.01
    pgd_steps: int = 5
    edge_budget_ratio: float = 0.2
    attack_variant: str = "current"
    edge_step: str | None = None
    feature_box: float | None = None
    bisection_tol: float | None = None
    curriculum_gamma: float | None = None
    curriculum_period: int = 20
    symmetric_attack: bool | None = None
    discretise: str = "single_draw"
    best_of_k: int = 20
    attack_model_mode: str = "eval"
    info_reg_form: str = "single_hinge"

    def check(self, where: str = "method") -> None:
        super().check(where)
        require_at_least(f"{where}.eps", self.eps, 0.0)
        require_at_least(f"{where}.lamb", self.lamb, 0.0)
        require_greater(f"{where}.alpha", self.alpha, 0.0)
        require_at_least(f"{where}.beta", self.beta, 0.0)
        require_at_least(f"{where}.pgd_steps", self.pgd_steps, 1)
        require_in_range(f"{where}.edge_budget_ratio", self.edge_budget_ratio, 0.0, 1.0)
        require_choice(f"{where}.attack_variant", self.attack_variant, tuple(ATTACK_VARIANTS))
        if self.edge_step is not None:
            require_choice(f"{where}.edge_step", self.edge_step, EDGE_STEPS)
        require_at_least(f"{where}.feature_box", self.feature_box, 0.0)
        require_greater(f"{where}.bisection_tol", self.bisection_tol, 0.0)
        require_greater(f"{where}.curriculum_gamma", self.curriculum_gamma, 0.0)
        require_at_least(f"{where}.curriculum_period", self.curriculum_period, 1)
        require_choice(f"{where}.discretise", self.discretise, DISCRETISATIONS)
        require_at_least(f"{where}.best_of_k", self.best_of_k, 1)
        require_choice(f"{where}.attack_model_mode", self.attack_model_mode, ATTACK_MODEL_MODES)
        require_choice(f"{where}.info_reg_form", self.info_reg_form, INFO_REG_FORMS)

    def resolved(self) -> dict[str, object]:
        """The attack keys after the preset: explicit values win, nulls take ``attack_variant``'s."""
        preset = dict(ATTACK_VARIANTS[self.attack_variant])
        preset["alpha"] = 200.0 if self.attack_variant == "current" else 0.01
        return {k: (v if getattr(self, k) is None else getattr(self, k)) for k, v in preset.items()}


def build_ariel(cfg: ARIELConfig, ctx: BuildContext) -> ARIEL:
    """ARIEL on the configured graph encoder (``model.backbone: gcn``)."""
    return ARIEL(ctx.backbone, **grace_options(cfg, ctx), eps=cfg.eps, lamb=cfg.lamb, beta=cfg.beta,
                 pgd_steps=cfg.pgd_steps, edge_budget_ratio=cfg.edge_budget_ratio, discretise=cfg.discretise,
                 best_of_k=cfg.best_of_k, curriculum_period=cfg.curriculum_period,
                 attack_model_mode=cfg.attack_model_mode, info_reg_form=cfg.info_reg_form,
                 **cfg.resolved())  # type: ignore[arg-type]  # fmt: skip


register_method(ARIELConfig, build_ariel, inputs="graph")
