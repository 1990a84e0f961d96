import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory

from tianshou_qmle import optim as optim_module
from tianshou_qmle.optim import FusedAdamOptimizerFactory


def _two_copies() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ELU(), torch.nn.Linear(8, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ELU(), torch.nn.Linear(8, 1))
    twin.load_state_dict(net.state_dict())
    return net, twin


def _fit(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 20) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        loss = (net(x).squeeze(-1) - x.sum(-1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_fused_adam_takes_the_same_steps_as_tianshous_adam():
    net, twin = _two_copies()
    fused = FusedAdamOptimizerFactory(lr=1e-2).create_instances(net)[0]
    plain = AdamOptimizerFactory(lr=1e-2).create_instances(twin)[0]
    assert fused.defaults["fused"] is True
    _fit(net, fused)
    _fit(twin, plain)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(net[0].weight, _two_copies()[0][0].weight)  # it did train


def test_fused_adam_state_loads_into_plain_adam():
    net, twin = _two_copies()
    fused = FusedAdamOptimizerFactory(lr=1e-2).create_instances(net)[0]
    _fit(net, fused, steps=3)
    plain = AdamOptimizerFactory(lr=1e-2).create_instances(twin)[0]
    plain.load_state_dict(fused.state_dict())
    assert plain.state_dict()["state"][0]["step"] == 3


def test_fused_adam_falls_back_where_the_device_has_no_kernel(monkeypatch):
    real_adam = torch.optim.Adam

    def no_fused_kernel(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                               "supported devices")
        return real_adam(params, **kwargs)

    monkeypatch.setattr(optim_module.torch.optim, "Adam", no_fused_kernel)
    net, _ = _two_copies()
    opt = FusedAdamOptimizerFactory(lr=1e-3).create_instances(net)[0]
    assert not opt.defaults["fused"]
    assert len(opt.param_groups[0]["params"]) == 4  # the generator was not used up


@pytest.mark.parametrize("build", ["qmle", "iq", "savo"])
def test_our_factories_default_to_fused_adam(build):
    import inspect

    from tianshou_qmle.experiment import iq_factory, qmle_factory, savo_factory

    func = {"qmle": qmle_factory.build_qmle_algorithm, "iq": iq_factory.build_iq,
            "savo": savo_factory.build_savo}[build]
    assert inspect.signature(func).parameters["make_optim"].default is FusedAdamOptimizerFactory
