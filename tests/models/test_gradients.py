"""Every activation, loss and the whole network against central differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from models.activations import ACTIVATIONS, make_activation
from models.losses import LOSSES, make_loss
from models.network import Network

RTOL = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.linalg.norm(a)) + float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / max(scale, 1e-300)


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |z| >= 0.1 so relu-like kinks sit far from every finite-difference probe."""
    z = rng.uniform(0.1, 2.0, size=shape)
    return z * rng.choice([-1.0, 1.0], size=shape)


def activation_grad_error(name: str, alpha: float | None, z: np.ndarray) -> float:
    """Relative error of the activation's backward against central differences at z."""
    upstream = np.random.default_rng(0).normal(size=z.shape)
    act = make_activation(name, alpha)

    def objective() -> float:
        a = z.copy()
        act.forward(a)
        return float((a * upstream).sum())

    a = z.copy()
    act.forward(a)
    analytic = upstream.copy()
    act.backward(a, analytic)
    return rel_error(analytic, numerical_grad(objective, z))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_central_differences(name: str) -> None:
    z = away_from_kinks(np.random.default_rng(0), (5, 7))
    assert activation_grad_error(name, None, z) < RTOL


def loss_case(name: str, rng: np.random.Generator, scale: float = 1.0):
    n, k = 6, 4
    z = rng.normal(size=(n, k)) * scale
    if name == "categorical_crossentropy":
        t = np.eye(k)[rng.integers(0, k, n)]
    elif name == "binary_crossentropy":
        z = z[:, :1].copy()
        t = rng.integers(0, 2, (n, 1)).astype(float)
    else:
        t = rng.normal(size=(n, k)) * scale
        z = t + away_from_kinks(rng, (n, k)) * (3.0 if name == "huber" else 1.0)
    return z, t


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_matches_central_differences(name: str) -> None:
    rng = np.random.default_rng(1)
    z, t = loss_case(name, rng)
    loss = make_loss(name)
    value, grad = loss.value_and_grad(z.copy(), t)
    numeric = numerical_grad(lambda: loss.value_and_grad(z.copy(), t)[0], z)
    assert np.isfinite(value)
    assert rel_error(grad, numeric) < RTOL


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_scale_is_applied(name: str) -> None:
    rng = np.random.default_rng(2)
    z, t = loss_case(name, rng)
    loss = make_loss(name)
    _, grad = loss.value_and_grad(z.copy(), t)
    _, scaled = loss.value_and_grad(z.copy(), t, scale=-0.25)
    np.testing.assert_allclose(scaled, -0.25 * grad, rtol=1e-12)


def test_softmax_cross_entropy_is_stable_for_large_logits() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 5)) * 3 + np.array([[1000.0], [-1000.0], [5000.0], [0.0]])
    t = np.eye(5)[[0, 1, 2, 3]]
    loss = make_loss("categorical_crossentropy")
    value, grad = loss.value_and_grad(z.copy(), t)
    shifted = z - z.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(axis=1)) - (shifted * t).sum(axis=1))
    assert np.isfinite(value) and abs(value - expected) < 1e-12
    numeric = numerical_grad(lambda: loss.value_and_grad(z.copy(), t)[0], z)
    assert rel_error(grad, numeric) < RTOL
    p = loss.outputs(z)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)


def test_binary_cross_entropy_is_stable_for_large_logits() -> None:
    z = np.array([[800.0], [-800.0], [30.0]])
    t = np.array([[0.0], [1.0], [1.0]])
    value, grad = make_loss("binary_crossentropy").value_and_grad(z.copy(), t)
    assert abs(value - (800.0 + 800.0 + np.log1p(np.exp(-30.0))) / 3) < 1e-9
    expected = [1 / 3, -1 / 3, (1 / (1 + np.exp(-30)) - 1) / 3]
    np.testing.assert_allclose(grad[:, 0], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss_name", ["categorical_crossentropy", "mse", "binary_crossentropy"])
@pytest.mark.parametrize("batch", [1, 5])
def test_network_gradient_matches_central_differences(
    activation: str, loss_name: str, batch: int
) -> None:
    rng = np.random.default_rng(4)
    k = 1 if loss_name == "binary_crossentropy" else 3
    net = Network([4, 6, 5, k], [activation, activation], "float64")
    net.initialize("glorot_uniform", rng)
    net.theta += rng.normal(scale=0.1, size=net.theta.shape)  # nonzero biases too
    x = np.hstack([rng.normal(size=(batch, 4)), np.ones((batch, 1))])
    _, t = loss_case(loss_name, rng)
    t = (
        t[:batch, :k]
        if loss_name != "categorical_crossentropy"
        else np.eye(k)[rng.integers(0, k, batch)]
    )
    loss = make_loss(loss_name)

    def objective() -> float:
        z = net.logits(x[:, :-1])
        return loss.value_and_grad(z, t)[0]

    ws = net.workspace(batch)
    z = net.forward(x, ws)
    _, dz = loss.value_and_grad(z, t, out=ws.dlogits)
    net.backward(dz, ws)
    numeric = numerical_grad(objective, net.theta)
    assert rel_error(net.grad, numeric) < RTOL
    # The flat views really are the per-layer params/grads dicts.
    assert net.layers[0].grads["W"].base is not None
