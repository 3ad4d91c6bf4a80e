"""The new vocabulary's gradients against central differences in float64 (alpha variants, label
smoothing, huber_delta, class weights, L2, dropout with a fixed mask), plus the values' formulas.

The new activations (gelu, silu, selu, softplus) are also in ACTIVATIONS, so test_gradients.py
checks each alone and inside a network."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.activations import ACTIVATIONS, GELU, SELU, SiLU, make_activation
from models.losses import make_loss, smooth_targets
from models.network import Network
from models.regularization import L2Penalty
from tests.models.test_gradients import (
    RTOL,
    activation_grad_error,
    away_from_kinks,
    loss_case,
    numerical_grad,
    rel_error,
)

CROSS_ENTROPIES = ["categorical_crossentropy", "binary_crossentropy"]


@pytest.mark.parametrize(
    ("name", "alpha"),
    [("leaky_relu", 0.0), ("leaky_relu", 0.2), ("leaky_relu", 1.0), ("elu", 0.5), ("elu", 2.5)],
)
def test_alpha_variants_match_central_differences(name: str, alpha: float) -> None:
    z = away_from_kinks(np.random.default_rng(1), (5, 7))
    assert activation_grad_error(name, alpha, z) < RTOL
    a = z.copy()
    make_activation(name, alpha).forward(a)
    negative = z < 0
    expected = alpha * z if name == "leaky_relu" else alpha * np.expm1(z)
    np.testing.assert_allclose(a[negative], expected[negative], rtol=1e-12)


@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "selu"])
def test_new_activations_hold_up_at_large_magnitudes(name: str) -> None:
    z = np.array([[-30.0, -8.0, -3.0, 3.0, 8.0, 30.0]])
    assert activation_grad_error(name, None, z) < RTOL


def test_gelu_is_the_tanh_approximation_and_close_to_the_exact_one() -> None:
    z = np.linspace(-6, 6, 241).reshape(1, -1)
    a = z.copy()
    GELU().forward(a)
    tanh_form = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    np.testing.assert_allclose(a, tanh_form, rtol=1e-12, atol=1e-15)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in z[0]])
    assert 0 < np.abs(a[0] - exact).max() < 1e-3  # an approximation, and a close one


def test_silu_selu_softplus_values_and_the_swish_alias() -> None:
    z = np.array([[-2.0, -0.5, 0.5, 2.0]])
    a = z.copy()
    SiLU().forward(a)
    np.testing.assert_allclose(a, z / (1 + np.exp(-z)), rtol=1e-12)
    assert isinstance(make_activation("swish"), SiLU)
    a = z.copy()
    SELU().forward(a)
    keras = np.where(z > 0, z, 1.6732632423543772 * np.expm1(z)) * 1.0507009873554805
    np.testing.assert_allclose(a, keras, rtol=1e-12)
    a = z.copy()
    make_activation("softplus").forward(a)
    np.testing.assert_allclose(a, np.log1p(np.exp(z)), rtol=1e-12)
    with pytest.raises(ValueError, match="takes no alpha"):
        make_activation("relu", 0.1)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_infer_computes_what_forward_does(name: str) -> None:
    z = np.random.default_rng(2).normal(size=(4, 6)) * 3
    trained, inferred = z.copy(), z.copy()
    make_activation(name).forward(trained)
    make_activation(name).infer(inferred)
    np.testing.assert_allclose(inferred, trained, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", CROSS_ENTROPIES)
def test_label_smoothing_follows_keras_and_its_gradient_is_exact(name: str) -> None:
    rng = np.random.default_rng(3)
    z, t = loss_case(name, rng, scale=2.0)
    s = 0.2
    smoothed = smooth_targets(t, s, name)
    k = 2 if name == "binary_crossentropy" else t.shape[1]
    np.testing.assert_allclose(smoothed, t * (1 - s) + s / k)
    loss = make_loss(name)
    value, grad = loss.value_and_grad(z.copy(), smoothed)
    if name == "binary_crossentropy":
        p = 1 / (1 + np.exp(-z))
        keras = -np.mean(smoothed * np.log(p) + (1 - smoothed) * np.log(1 - p))
    else:
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        keras = -np.mean((smoothed * log_p).sum(axis=1))
    assert value == pytest.approx(keras, rel=1e-12)
    numeric = numerical_grad(lambda: loss.value_and_grad(z.copy(), smoothed)[0], z)
    assert rel_error(grad, numeric) < RTOL
    assert smooth_targets(t, 0.0, name) is t  # off: not even a copy


@pytest.mark.parametrize("delta", [0.3, 2.5])
def test_huber_delta_value_and_gradient(delta: float) -> None:
    rng = np.random.default_rng(4)
    t = rng.normal(size=(6, 3))
    # Residuals on both sides of delta, none near the kinks at +-delta.
    magnitude = np.where(rng.random((6, 3)) < 0.5, rng.uniform(0.1, 0.9, (6, 3)), 1.0)
    magnitude = np.where(magnitude == 1.0, rng.uniform(1.2, 3.0, (6, 3)), magnitude)
    residual = delta * magnitude * rng.choice([-1.0, 1.0], size=(6, 3))
    z = t + residual
    loss = make_loss("huber", huber_delta=delta)
    value, grad = loss.value_and_grad(z.copy(), t)
    r = np.abs(residual)
    keras = np.mean(np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)))
    assert value == pytest.approx(keras, rel=1e-12)
    numeric = numerical_grad(lambda: loss.value_and_grad(z.copy(), t)[0], z)
    assert rel_error(grad, numeric) < RTOL
    assert (np.abs(grad) <= delta / z.size + 1e-15).all()


@pytest.mark.parametrize("name", CROSS_ENTROPIES)
def test_class_weights_are_keras_weighted_means(name: str) -> None:
    rng = np.random.default_rng(5)
    z, t = loss_case(name, rng)
    w = rng.uniform(0.2, 3.0, size=(z.shape[0], 1))
    loss = make_loss(name)
    value, grad = loss.value_and_grad(z.copy(), t, weights=w)
    per_sample = [loss.value_and_grad(z[i : i + 1].copy(), t[i : i + 1])[0] for i in range(len(z))]
    assert value == pytest.approx(float(np.mean(w[:, 0] * per_sample)), rel=1e-12)
    numeric = numerical_grad(lambda: loss.value_and_grad(z.copy(), t, weights=w)[0], z)
    assert rel_error(grad, numeric) < RTOL
    _, scaled = loss.value_and_grad(z.copy(), t, scale=-0.25, weights=w)
    np.testing.assert_allclose(scaled, -0.25 * grad, rtol=1e-12)
    ones, _ = loss.value_and_grad(z.copy(), t, weights=np.ones_like(w))
    assert ones == pytest.approx(loss.value_and_grad(z.copy(), t)[0], rel=1e-12)


def test_regression_losses_refuse_sample_weights() -> None:
    z = np.zeros((2, 1))
    with pytest.raises(ValueError, match="no sample weights"):
        make_loss("mse").value_and_grad(z, z, weights=np.ones((2, 1)))


def small_network(rng: np.random.Generator, **kw) -> Network:
    net = Network([4, 6, 5, 3], ["tanh", "relu"], "float64", **kw)
    net.initialize("glorot_uniform", rng)
    net.theta += rng.normal(scale=0.1, size=net.theta.shape)  # nonzero biases too
    return net


def batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.hstack([rng.normal(size=(n, 4)), np.ones((n, 1))])
    return x, np.eye(3)[rng.integers(0, 3, n)]


def test_l2_penalty_gradient_and_value() -> None:
    rng = np.random.default_rng(6)
    net = small_network(rng)
    x, t = batch(rng, 5)
    penalty = L2Penalty.for_network(net, [0.01, 0.003])
    assert penalty is not None and L2Penalty.for_network(net, [0.0, 0.0]) is None
    loss = make_loss("categorical_crossentropy")

    def objective() -> float:
        return loss.value_and_grad(net.logits(x[:, :-1]), t)[0] + penalty.value()

    ws = net.workspace(5)
    _, dz = loss.value_and_grad(net.forward(x, ws), t, out=ws.dlogits)
    net.backward(dz, ws)
    plain = net.grad.copy()
    value = penalty.apply(1.0)
    layers = net.layers
    expected = (
        0.01 * (layers[0].params["W"] ** 2).sum() + 0.003 * (layers[1].params["W"] ** 2).sum()
    )
    assert value == pytest.approx(expected, rel=1e-12)
    assert rel_error(net.grad, numerical_grad(objective, net.theta)) < RTOL
    changed = net.grad != plain
    # The two hidden layers' weights only: never a bias, never the output layer's block.
    hidden_weights = net.weight_mask().astype(bool)
    hidden_weights[-(5 + 1) * 3 :] = False
    np.testing.assert_array_equal(changed, hidden_weights)
    # The trainer folds the learning rate in: the penalty's gradient follows grad_scale.
    added = net.grad - plain
    np.copyto(net.grad, plain)
    penalty.apply(-0.5)
    np.testing.assert_allclose(net.grad - plain, -0.5 * added, rtol=1e-10)


@pytest.mark.parametrize("n", [1, 6])
def test_dropout_gradient_with_a_fixed_mask(n: int) -> None:
    rng = np.random.default_rng(7)
    net = small_network(rng, dropout=[0.3, 0.5])
    x, t = batch(rng, n)
    loss = make_loss("categorical_crossentropy")

    def objective() -> float:
        ws = net.workspace(n)
        z = net.forward(x, ws, np.random.default_rng(9))  # the same masks on every call
        return loss.value_and_grad(z.copy(), t)[0]

    ws = net.workspace(n)
    _, dz = loss.value_and_grad(net.forward(x, ws, np.random.default_rng(9)), t, out=ws.dlogits)
    net.backward(dz, ws)
    analytic = net.grad.copy()
    assert rel_error(analytic, numerical_grad(objective, net.theta)) < RTOL
    # The masks are 0 or 1 / (1 - p), and they did change the gradient.
    for mask, p in zip(ws.masks[:2], (0.3, 0.5), strict=True):
        assert mask is not None
        assert set(np.unique(mask)) <= {0.0, 1.0 / (1.0 - p)}
    ws_plain = net.workspace(n)
    _, dz = loss.value_and_grad(net.forward(x, ws_plain), t, out=ws_plain.dlogits)
    net.backward(dz, ws_plain)
    assert rel_error(net.grad, analytic) > 1e-3


def test_dropout_masks_keep_one_minus_p_and_predict_is_the_identity() -> None:
    rng = np.random.default_rng(8)
    net = Network([20, 400, 3], ["relu"], "float64", dropout=[0.25])
    net.initialize("glorot_uniform", rng)
    x = np.hstack([rng.normal(size=(500, 20)), np.ones((500, 1))])
    ws = net.workspace(500)
    net.forward(x, ws, np.random.default_rng(0))
    mask = ws.masks[0]
    assert mask is not None and ws.kept[0] is not None
    assert abs(float(np.mean(mask > 0)) - 0.75) < 0.01
    np.testing.assert_array_equal(ws.outputs[0], ws.kept[0] * mask)
    # Without a generator (and at prediction) nothing is dropped. The training forward folds the
    # bias into the GEMM (a column of ones), prediction adds it: equal up to rounding.
    np.testing.assert_allclose(net.forward(x, ws), net.logits(x[:, :-1]), rtol=1e-12, atol=1e-14)
    assert Network([20, 8, 3], ["relu"]).workspace(4).masks == [None, None]
