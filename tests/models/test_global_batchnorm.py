"""GlobalBatchNorm: ordinary BN in one process; over 2 gloo processes, SimCLR gradients equal the 1-process ones."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from contrastkit.augment import simclr_views
from contrastkit.data import Batch
from contrastkit.methods import SimCLR
from contrastkit.models import GlobalBatchNorm, convert_to_global_batchnorm, resnet18


def make_method(global_bn: bool) -> SimCLR:
    torch.manual_seed(0)
    backbone = resnet18(in_channels=1, small_stem=True, width=0.125)
    method = SimCLR(backbone, simclr_views(8, 1), projection_dim=16, gather_distributed=True).double()
    return convert_to_global_batchnorm(method) if global_bn else method


def gradients(method: SimCLR, views: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    method.zero_grad()
    method.training_step(Batch(views=views))["loss"].backward()
    return {k: p.grad.detach().clone() for k, p in method.named_parameters()}


def _worker(rank: int, port: int, views: tuple[torch.Tensor, torch.Tensor], global_bn: bool, out: dict) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        half = views[0].shape[0] // 2
        local = tuple(v[rank * half : (rank + 1) * half] for v in views)
        grads = gradients(make_method(global_bn), local)  # type: ignore[arg-type]
        for g in grads.values():
            dist.all_reduce(g)
            g /= 2  # what DDP does
        if rank == 0:
            out.update({k: v.numpy() for k, v in grads.items()})
    finally:
        dist.destroy_process_group()


def two_process_gradients(views: tuple[torch.Tensor, torch.Tensor], global_bn: bool) -> dict[str, torch.Tensor]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(port, views, global_bn, out), nprocs=2, join=True)
        return {k: torch.from_numpy(v) for k, v in out.items()}


def test_single_process_equals_batchnorm() -> None:
    bn, gbn = nn.BatchNorm2d(4).double(), GlobalBatchNorm(4).double()
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(gbn(x), bn(x))
    torch.testing.assert_close(gbn.running_var, bn.running_var)
    gbn.eval(), bn.eval()
    torch.testing.assert_close(gbn(x), bn(x))


def test_conversion_keeps_weights_and_replaces_every_batchnorm() -> None:
    method = make_method(global_bn=False)
    reference = {k: v.clone() for k, v in method.state_dict().items()}
    converted = convert_to_global_batchnorm(method)
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in converted.modules())
    assert sum(isinstance(m, GlobalBatchNorm) for m in converted.modules()) > 10
    for k, v in converted.state_dict().items():
        torch.testing.assert_close(v, reference[k])


def test_two_processes_give_the_one_process_gradients_in_float64() -> None:
    generator = torch.Generator().manual_seed(1)
    views = (
        torch.rand(16, 1, 8, 8, generator=generator, dtype=torch.float64),
        torch.rand(16, 1, 8, 8, generator=generator, dtype=torch.float64),
    )
    single = gradients(make_method(global_bn=True), views)
    exact = two_process_gradients(views, global_bn=True)
    for k in single:
        torch.testing.assert_close(exact[k], single[k], rtol=1e-9, atol=1e-11, msg=k)
    # negative control: per-process batch statistics change the gradients
    per_rank = two_process_gradients(views, global_bn=False)
    assert max(float((per_rank[k] - single[k]).abs().max()) for k in single) > 1e-4
