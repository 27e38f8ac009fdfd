"""The ensemble engine: hand-written gradients against autograd, training against
torch.optim.Adam, batch-versus-alone equivalence, determinism, constraints, bad input.

Tolerances. float32 has unit roundoff u = 2**-24 ~ 6e-8 (machine epsilon 2u). Two
computations that differ only in the order of float32 sums (a member alone or inside a
batch; one row block or several) differ per step by a relative O(u) in the gradient.
Adam divides the first moment by the root of the second, so a relative gradient error rho
moves each update (of size <= ~lr) by about lr * rho; over T steps parameters drift by at
most about T * lr * rho per coordinate, and J (Lipschitz in the parameters, with constant
of order max|x| * sqrt(p) for these small nets) by about T * lr * sqrt(p) * rho. We take
rho = 64 u (sums over up to ~60 terms) and allow that bound: ``drift_tol`` below.
"""

import math

import numpy as np
import pytest
import torch

from gangen.distances.measuring import LogMeasuring, get_measuring
from gangen.nn.ensemble import (
    ChunkPlan,
    evaluate_ensemble,
    per_member_plan,
    plan_chunks,
    resolve_device,
    train_ensemble,
    train_ensemble_stream,
    value_and_grad,
)
from gangen.nn.families import MLPFamily, linear_family

U32 = 2.0**-24  # float32 unit roundoff


def drift_tol(steps: int, lr: float, p: int) -> float:
    """Bound on |J_a - J_b| for two float32 trainings differing only in summation order (module docstring)."""
    return steps * lr * math.sqrt(p) * 64 * U32


def data(K, m, n, d, seed=0, shift=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(K, m, d)).astype(np.float32)
    y = (rng.normal(size=(K, n, d)) + shift).astype(np.float32)
    return x, y


def reference_objective(fam, phi, params, x, y):
    """J by autograd-able float64 torch: phi(D(x)) mean + phi(1 - D(y)) mean - 2 phi(1/2)."""
    Dx, Dy = fam.apply(params, x), fam.apply(params, y)
    return phi(Dx).mean(1) + phi(1 - Dy).mean(1) - 2 * phi.phi_half


COMBOS = [
    ("sigmoid", "log", "relu"),
    ("sigmoid", "identity", "leaky_relu"),
    ("sigmoid", "log", "tanh"),
    ("tanh", "identity", "relu"),
    ("linear", "identity", "tanh"),
]


@pytest.mark.parametrize("head, phi_name, act", COMBOS)
@pytest.mark.parametrize("rows", [4, 1000])  # several row blocks, or one
@pytest.mark.parametrize("hidden", [(5, 4), (3, 8)])  # unequal widths, narrowing and widening
def test_hand_written_gradient_matches_autograd(head, phi_name, act, rows, hidden):
    fam = MLPFamily(d=3, hidden=hidden, head=head, activation=act)
    phi = get_measuring(phi_name, delta=0.05)
    x, y = data(3, 7, 5, 3)
    params = fam.init([1, 2, 3])
    val, grad = value_and_grad(params, x, y, family=fam, phi=phi, device="cpu", plan=ChunkPlan(3, rows))
    P = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    J = reference_objective(fam, phi, P, torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
    J.sum().backward()
    # float32 engine vs float64 autograd: relative errors of a few u times the sums' depth
    np.testing.assert_allclose(val, J.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(grad, P.grad.numpy(), rtol=0, atol=1e-6 * max(1.0, P.grad.abs().max().item()))


class _BoundedSpectralNorm(torch.nn.utils.parametrizations._SpectralNorm):
    """torch's spectral_norm parametrization (power iteration, u and v held fixed in the
    backward pass) with W / max(1, sigma) in place of W / sigma; autograd differentiates it."""

    def forward(self, weight):
        if self.training:
            self._power_method(weight, self.n_power_iterations)
        sigma = torch.vdot(self._u.clone(), torch.mv(weight, self._v.clone()))
        return weight / sigma.clamp(min=1.0)


def loop_reference(fam, phi, init, x, y, steps, lr, spectral=False):
    """One nn.Module and one torch.optim.Adam per member (the benchmark's baseline), with one-core
    ops: these tiny ops split over OpenMP threads slowed 10x+ when other processes shared the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _loop_reference(fam, phi, init, x, y, steps, lr, spectral)
    finally:
        torch.set_num_threads(threads)


def _loop_reference(fam, phi, init, x, y, steps, lr, spectral):
    values, params = [], []
    for k in range(len(init)):
        net = fam.to_module(init[k])
        if spectral:
            for mod in net:
                if isinstance(mod, torch.nn.Linear):
                    sn = _BoundedSpectralNorm(mod.weight)
                    torch.nn.utils.parametrize.register_parametrization(mod, "weight", sn)
                    sn._v.fill_(1 / math.sqrt(mod.in_features))  # the engine's power-iteration start
                    with torch.no_grad():
                        sn._power_method(mod.parametrizations.weight.original, 15)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        X, Y = torch.from_numpy(x[k]), torch.from_numpy(y[k])
        XY = torch.cat([X, Y])  # one forward pass per step (spectral_norm iterates once per forward)
        for _ in range(steps):
            opt.zero_grad()
            D = net(XY)[:, 0]
            loss = -(phi(D[: len(X)]).mean() + phi(1 - D[len(X) :]).mean())
            loss.backward()
            opt.step()
        if spectral:  # export W / sigma with the exact sigma, as the engine does
            for i, mod in enumerate(net):
                if isinstance(mod, torch.nn.Linear):
                    W = mod.parametrizations.weight.original.detach()
                    plain = torch.nn.Linear(mod.in_features, mod.out_features)
                    with torch.no_grad():
                        plain.weight.copy_(W / torch.linalg.matrix_norm(W, ord=2).clamp(min=1.0))
                        plain.bias.copy_(mod.bias)
                    net[i] = plain
        with torch.no_grad():
            values.append((phi(net(X)).double().mean() + phi(1 - net(Y)).double().mean() - 2 * phi.phi_half).item())
        params.append(net)
    return np.array(values), params


def test_training_matches_torch_adam_loop():
    fam = MLPFamily(d=3, hidden=(8, 6))
    phi = LogMeasuring(1e-3)
    x, y = data(4, 20, 25, 3)
    steps, lr = 60, 1e-2
    res = train_ensemble(x, y, family=fam, seeds=range(4), phi=phi, steps=steps, lr=lr, device="cpu")
    ref, _ = loop_reference(fam, phi, fam.init(range(4)), x, y, steps, lr)
    np.testing.assert_allclose(res.values, ref, rtol=0, atol=drift_tol(steps, lr, fam.n_params))


def test_spectral_norm_matches_torch_parametrization():
    # torch's spectral_norm parametrization (bounded: W / max(1, sigma)) with the same
    # power-iteration start (15 warm-up iterations, then one per forward pass), autograd
    # through it, and the same export (exact sigma)
    # (a sigmoid head with phi = log: with an IPM's linear head, the bias gradient of a hidden
    # unit active on every point is 0 in exact arithmetic, and Adam turns its float32 rounding
    # noise into steps of size lr, different for any two summation orders)
    fam = MLPFamily(d=3, hidden=(6,), spectral_norm=True)
    phi = LogMeasuring(0.01)
    x, y = data(2, 16, 16, 3)
    res = train_ensemble(x, y, family=fam, seeds=[0, 1], phi=phi, steps=40, lr=1e-2, device="cpu")
    ref, _ = loop_reference(fam, phi, fam.init([0, 1]), x, y, 40, 1e-2, spectral=True)
    np.testing.assert_allclose(res.values, ref, rtol=0, atol=drift_tol(40, 1e-2, fam.n_params))
    for (W, _) in fam.unflatten(torch.from_numpy(res.params)):
        assert torch.linalg.matrix_norm(W, ord=2).max() <= 1 + 1e-6


@pytest.mark.parametrize("batch_size", [None, 8])
def test_member_in_batch_equals_member_alone(batch_size):
    fam = MLPFamily(d=2, hidden=(7, 5), activation="leaky_relu")
    x, y = data(5, 24, 20, 2)
    steps, lr = 50, 1e-2
    seeds = [3, 1, 4, 1, 5]
    batch = train_ensemble(x, y, family=fam, seeds=seeds, steps=steps, lr=lr, batch_size=batch_size, device="cpu", plan=ChunkPlan(5, 64))
    tol = drift_tol(steps, lr, fam.n_params)
    for k in range(5):
        # alone, and with rows split into blocks of 5: a different summation order
        alone = train_ensemble(x[k : k + 1], y[k : k + 1], family=fam, seeds=[seeds[k]], steps=steps, lr=lr,
                               batch_size=batch_size, device="cpu", plan=ChunkPlan(1, 5))
        assert abs(batch.values[k] - alone.values[0]) <= tol
        np.testing.assert_allclose(batch.params[k], alone.params[0], rtol=0, atol=steps * lr * 64 * U32 * 10)


@pytest.mark.parametrize("members", [1, 2, 6])
def test_results_do_not_depend_on_the_number_of_workers(members):
    # every chunk runs with one-core ops, in the calling thread (one worker, or one chunk) or
    # on a worker thread, so for a given plan the bits are the same for any worker count;
    # the caller's torch thread count is restored afterwards
    fam = MLPFamily(d=3, hidden=(7, 5))
    x, y = data(6, 40, 40, 3)
    kw = dict(family=fam, seeds=range(6), steps=30, lr=1e-2, device="cpu")
    threads = torch.get_num_threads()
    runs = [train_ensemble(x, y, **kw, plan=ChunkPlan(members, 32, workers=w)) for w in (1, 2, 3)]
    assert torch.get_num_threads() == threads
    for other in runs[1:]:
        assert np.array_equal(runs[0].values, other.values) and np.array_equal(runs[0].params, other.params)
    held = [evaluate_ensemble(runs[0].params, y, x, family=fam, device="cpu", plan=ChunkPlan(members, 32, workers=w))
            for w in (1, 2)]
    assert np.array_equal(held[0], held[1])


@pytest.mark.parametrize("batch_size", [None, 8])
def test_per_member_plan_member_in_batch_equals_member_alone_bit_for_bit(batch_size):
    # one member per chunk: its arithmetic does not depend on its batch mates (odd widths, whose
    # members sit at offsets that are not multiples of the SIMD width: with the automatic plan
    # they differ from alone by ~1e-7 in the parameters here, torch 2.13 CPU)
    fam = MLPFamily(d=3, hidden=(7, 5))
    x, y = data(5, 40, 36, 3)
    seeds = [3, 1, 4, 1, 5]
    kw = dict(family=fam, steps=50, lr=1e-2, batch_size=batch_size, device="cpu", plan="per_member")
    batch = train_ensemble(x, y, seeds=seeds, **kw)
    for k in range(5):
        alone = train_ensemble(x[k : k + 1], y[k : k + 1], seeds=[seeds[k]], **kw)
        assert batch.values[k] == alone.values[0]
        assert np.array_equal(batch.params[k], alone.params[0])


def test_per_member_plan():
    fam = MLPFamily(d=16, hidden=(64, 64))
    assert per_member_plan(fam, 5, 100, "cpu", cpu_workers=2) == ChunkPlan(1, 100, 2)
    assert per_member_plan(fam, 1, 100, "cpu", cpu_workers=2) == ChunkPlan(1, 100, 1)
    # a large member: the row blocks plan_chunks picks for it alone
    assert per_member_plan(fam, 8, 8192, "cpu").rows == plan_chunks(fam, 1, 8192, "cpu").rows


def test_deterministic_same_seeds_same_results():
    fam = MLPFamily(d=2, hidden=(6, 6))
    x, y = data(3, 30, 30, 2)
    kw = dict(family=fam, seeds=[7, 8, 9], steps=25, lr=1e-2, batch_size=10, device="cpu")
    a, b = train_ensemble(x, y, **kw), train_ensemble(x, y, **kw)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.params, b.params)
    c = train_ensemble(x, y, **{**kw, "seeds": [7, 8, 10]})
    assert np.array_equal(a.params[:2], c.params[:2]) and not np.array_equal(a.params[2], c.params[2])


def test_full_minibatch_equals_full_batch():
    # batch_size = m = n: every step sees all rows (in a shuffled order): the same gradient
    fam = MLPFamily(d=2, hidden=(5,))
    x, y = data(2, 12, 12, 2)
    kw = dict(family=fam, seeds=[0, 1], steps=30, lr=1e-2, device="cpu")
    full = train_ensemble(x, y, **kw)
    mini = train_ensemble(x, y, **kw, batch_size=12)
    np.testing.assert_allclose(full.values, mini.values, rtol=0, atol=drift_tol(30, 1e-2, fam.n_params))


def test_minibatches_differ_from_full_batch():
    fam = MLPFamily(d=2, hidden=(5,))
    x, y = data(1, 40, 40, 2)
    kw = dict(family=fam, seeds=[0], steps=30, lr=1e-2, device="cpu")
    assert abs(train_ensemble(x, y, **kw).values[0] - train_ensemble(x, y, **kw, batch_size=4).values[0]) > 1e-4


def test_evaluate_matches_training_values_and_reference():
    fam = MLPFamily(d=3, hidden=(4,))
    phi = LogMeasuring(0.01)
    x, y = data(3, 10, 14, 3)
    res = train_ensemble(x, y, family=fam, seeds=range(3), phi=phi, steps=20, lr=1e-2, device="cpu")
    np.testing.assert_array_equal(evaluate_ensemble(res.params, x, y, family=fam, phi=phi, device="cpu"), res.values)
    xh, yh = data(3, 50, 40, 3, seed=1)
    held = evaluate_ensemble(res.params, xh, yh, family=fam, phi=phi, device="cpu")
    f64 = [torch.tensor(a, dtype=torch.float64) for a in (res.params, xh, yh)]
    ref = reference_objective(fam, phi, *f64)
    np.testing.assert_allclose(held, ref.numpy(), rtol=0, atol=1e-6)


def test_data_index_shares_sample_sets():
    fam = MLPFamily(d=2, hidden=(4,))
    x, y = data(2, 10, 10, 2)
    shared = train_ensemble(x, y, family=fam, seeds=[5, 6, 7], data_index=[1, 0, 1], steps=20, device="cpu")
    explicit = train_ensemble(x[[1, 0, 1]], y[[1, 0, 1]], family=fam, seeds=[5, 6, 7], steps=20, device="cpu")
    np.testing.assert_array_equal(shared.values, explicit.values)


def test_mirrored_problem_gives_mirrored_training():
    # F is closed under negating the output layer (D -> 1 - D), and Adam is sign-equivariant:
    # training on (y, x) from the negated start follows the mirror image of training on (x, y)
    fam = MLPFamily(d=2, hidden=(6,))
    x, y = data(2, 16, 16, 2)
    init = fam.init([0, 1])
    mirrored = init.copy()
    mirrored[:, fam.offsets[-1][0] :] *= -1  # output weights and bias
    steps, lr = 40, 1e-2
    a = train_ensemble(x, y, family=fam, seeds=[0, 1], init=init, steps=steps, lr=lr, device="cpu")
    b = train_ensemble(y, x, family=fam, seeds=[0, 1], init=mirrored, steps=steps, lr=lr, device="cpu")
    np.testing.assert_allclose(a.values, b.values, rtol=0, atol=drift_tol(steps, lr, fam.n_params))


def test_linear_class_reaches_closed_form():
    # sup_{||w|| <= 1} w.(mean x - mean y) = ||mean x - mean y||; float32 data: 1e-5 relative
    x, y = data(3, 40, 30, 4, shift=0.3)
    res = train_ensemble(x, y, family=linear_family(4), seeds=range(3), phi="identity", steps=200, lr=0.05, device="cpu")
    exact = np.linalg.norm(x.astype(np.float64).mean(1) - y.astype(np.float64).mean(1), axis=1)
    np.testing.assert_allclose(res.values, exact, rtol=1e-5)


def test_weight_clip_holds():
    fam = MLPFamily(d=2, hidden=(6,), head="linear", weight_clip=0.05)
    x, y = data(2, 20, 20, 2, shift=3.0)
    res = train_ensemble(x, y, family=fam, seeds=[0, 1], phi="identity", steps=50, lr=0.05, device="cpu")
    assert np.abs(res.params).max() <= 0.05
    assert np.isclose(np.abs(res.params).max(), 0.05)  # the constraint is active


def test_separable_data_reach_near_the_maximum():
    # x at +1, y at -1: the sup over all D is 2 log(1) - 2 log((1 + delta)/2) = 2 log(2/(1 + delta))
    fam = MLPFamily(d=1, hidden=(4,))
    x, y = np.ones((1, 8, 1)), -np.ones((1, 8, 1))
    res = train_ensemble(x, y, family=fam, seeds=[0], phi=LogMeasuring(0.1), steps=400, lr=0.05, device="cpu")
    top = 2 * math.log(2 / 1.1)
    assert top - 0.01 < res.values[0] <= top + 1e-9


def test_plan_chunks_fits_the_cache_budget():
    fam = MLPFamily(d=16, hidden=(32, 32))
    row_bytes = 4 * (16 + 2 * (32 + 32) + 4)  # input row, activations and their gradients, output
    budget = 40 * 128 * row_bytes  # room for 40 members of 128 rows
    assert plan_chunks(fam, 64, 128, "cpu", cpu_workers=1, cpu_cache_bytes=budget) == ChunkPlan(40, 128, 1)
    # two workers: K split into at least two chunks
    assert plan_chunks(fam, 64, 128, "cpu", cpu_workers=2, cpu_cache_bytes=budget) == ChunkPlan(32, 128, 2)
    # one member larger than the budget: equal row blocks of at most 3000 rows
    big = plan_chunks(fam, 64, 8192, "cpu", cpu_workers=2, cpu_cache_bytes=3000 * row_bytes)
    assert big.members == 1 and big.rows * 3 >= 8192 and big.rows <= 3000 and big.workers == 2
    assert plan_chunks(fam, 1, 128, "cpu", cpu_workers=2).workers == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    fam = MLPFamily(d=3, hidden=(8, 8))
    x, y = data(4, 32, 32, 3)
    kw = dict(family=fam, seeds=range(4), steps=30, lr=1e-2)
    cpu = train_ensemble(x, y, device="cpu", **kw)
    gpu = train_ensemble(x, y, device="cuda", **kw)
    np.testing.assert_allclose(gpu.values, cpu.values, rtol=0, atol=drift_tol(30, 1e-2, fam.n_params))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match="device"):
        resolve_device(0)


BAD = [
    (dict(x=np.zeros((2, 3))), ValueError, "shape"),
    (dict(x=np.zeros((1, 4, 3))), ValueError, "dimension"),
    (dict(y=np.zeros((2, 4, 2))), ValueError, "same number K"),
    (dict(x=np.full((1, 4, 2), np.nan)), ValueError, "finite"),
    (dict(x=np.zeros((1, 0, 2))), ValueError, "non-empty"),
    (dict(family=MLPFamily(d=2, head="linear")), ValueError, "head='sigmoid'"),
    (dict(family="mlp"), TypeError, "MLPFamily"),
    (dict(phi="logit"), ValueError, "phi"),
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), TypeError, "steps"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(batch_size=5), ValueError, "batch_size"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(betas=(0.9, 1.0)), ValueError, "beta2"),
    (dict(seeds=[]), ValueError, "seed"),
    (dict(seeds=[0, 1]), ValueError, "one sample set per member"),
    (dict(seeds=[0, 1], data_index=[0, 3]), ValueError, "data_index"),
    (dict(init=np.zeros((1, 3))), ValueError, "init"),
    (dict(init=np.full((1, 9), np.inf)), ValueError, "init"),
    (dict(device="gpu0"), ValueError, "device"),
    (dict(plan=(1, 2)), TypeError, "plan"),
    (dict(plan="per-member"), ValueError, "plan"),
]


@pytest.mark.parametrize("override, exc, match", BAD)
def test_bad_input_raises(override, exc, match):
    kw = dict(x=np.zeros((1, 4, 2)), y=np.ones((1, 4, 2)), family=MLPFamily(d=2, hidden=(2,)), seeds=[0], steps=2, device="cpu")
    kw.update(override)
    with pytest.raises(exc, match=match):
        train_ensemble(kw.pop("x"), kw.pop("y"), **kw)


def test_evaluate_bad_params_raise():
    fam = MLPFamily(d=2, hidden=(2,))
    x = np.zeros((1, 4, 2))
    with pytest.raises(ValueError, match="params"):
        evaluate_ensemble(np.zeros((1, 5)), x, x, family=fam, device="cpu")
    with pytest.raises(ValueError, match="params"):
        evaluate_ensemble(np.zeros(fam.n_params), x, x, family=fam, device="cpu")


# ------------------------------------------------------------------ train_ensemble_stream
def test_stream_with_a_fixed_batch_equals_full_batch_training():
    """The same batch at every step is full-batch training: the same members, the same rows per block."""
    fam = MLPFamily(d=3, hidden=(10, 6))
    x, y = data(1, 40, 30, 3, seed=5)
    full = train_ensemble(np.repeat(x, 3, 0), np.repeat(y, 3, 0), family=fam, seeds=[4, 5, 6], steps=80, lr=1e-2,
                          device="cpu", plan=ChunkPlan(3, 70, 1))
    stream = train_ensemble_stream(lambda t: (x[0], y[0], None), family=fam, seeds=[4, 5, 6], steps=80, lr=1e-2,
                                   device="cpu", rows=70)
    # the same rows in the same blocks through the same kernels: the same bits (measured on both backends)
    assert np.array_equal(stream.params, full.params) and np.array_equal(stream.values, full.values)
    assert stream.values.shape == (3,) and stream.batch_size is None


def test_stream_weights_equal_repeated_rows():
    """y rows (a, b) with weights (3/4, 1/4) are the rows (a, a, a, b) with weight 1/4 each (exact in real arithmetic)."""
    fam = MLPFamily(d=2, hidden=(8,), activation="tanh")
    rng = np.random.default_rng(0)
    x, a, b = rng.normal(size=(5, 2)), rng.normal(size=(1, 2)) + 1, rng.normal(size=(1, 2)) - 1
    weighted = train_ensemble_stream(lambda t: (x, np.vstack([a, b]), np.array([0.75, 0.25])), family=fam, seeds=[0, 1],
                                     steps=50, lr=1e-2, device="cpu")
    repeated = train_ensemble_stream(lambda t: (x, np.vstack([a, a, a, b]), None), family=fam, seeds=[0, 1],
                                     steps=50, lr=1e-2, device="cpu")
    assert np.max(np.abs(weighted.values - repeated.values)) <= drift_tol(50, 1e-2, fam.n_params)


def test_stream_draws_one_batch_per_step_in_order_and_matches_a_torch_adam_reference():
    """A fresh batch per step: the engine against a plain torch loop (nn.Module + torch.optim.Adam) on the same stream."""
    fam = MLPFamily(d=2, hidden=(6, 6))
    phi = LogMeasuring(0.1)
    rng = np.random.default_rng(1)
    stream = [(rng.normal(size=(16, 2)), rng.normal(size=(12, 2)) + 1.0, rng.dirichlet(np.ones(12))) for _ in range(40)]
    calls = []

    def batches(t):
        calls.append(t)
        return stream[t - 1]

    res = train_ensemble_stream(batches, family=fam, seeds=[9], phi=phi, steps=40, lr=1e-2, device="cpu")
    assert calls == list(range(1, 41))
    net = fam.to_module(fam.init([9])[0]).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for x, y, w in stream:
        X, Y, W = (torch.from_numpy(a) for a in (x, y, w))
        loss = -(phi(net(X)[:, 0]).mean() + (W * phi(1 - net(Y)[:, 0])).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    ref = torch.cat([p.detach().T.reshape(-1) if p.ndim == 2 else p.detach() for p in net.parameters()]).numpy()
    assert np.max(np.abs(res.params[0] - ref)) <= 40 * 1e-2 * 0.05  # float32 against float64: far below one step (lr) per step


@pytest.mark.parametrize(
    "batch,exc,match",
    [
        (lambda t: (np.zeros((4, 3)), np.zeros((4, 3))), TypeError, "tuple"),
        (lambda t: (np.zeros((4, 2)), np.zeros((4, 2)), None), ValueError, "family expects d=3"),
        (lambda t: (np.zeros((4, 3)), np.zeros((4, 3)), np.ones(4)), ValueError, "y_weights"),
        (lambda t: (np.zeros((4, 3)), np.full((4, 3), np.nan), None), ValueError, "finite|NaN"),
    ],
)
def test_stream_bad_batches_raise(batch, exc, match):
    with pytest.raises(exc, match=match):
        train_ensemble_stream(batch, family=MLPFamily(d=3, hidden=(4,)), seeds=[0], steps=2, device="cpu")
    with pytest.raises(TypeError, match="callable"):
        train_ensemble_stream([1, 2], family=MLPFamily(d=3, hidden=(4,)), seeds=[0], steps=2, device="cpu")
