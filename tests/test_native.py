"""gangen.nn.native: the AVX-512 kernels against float64 references and torch, the torch
fallback, backend switching, and the engine under both backends.

Tolerances. A float32 dot product of length K, summed in any order (with or without FMA),
has error at most gamma_K * sum_k |a_k b_k| with gamma_K = K u / (1 - K u), u = 2**-24
(Higham, Accuracy and Stability of Numerical Algorithms, eq. 3.5); adding a bias or an
accumulated value adds one more term and one more rounding. ``dot_bound`` below is that
bound, plus the final rounding of the stored float32 result.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gangen.nn import native
from gangen.nn.ensemble import ChunkPlan, train_ensemble, value_and_grad
from gangen.nn.families import MLPFamily

U32 = 2.0**-24

needs_kernels = pytest.mark.skipif(
    not native.native_status().available, reason=f"AVX-512 kernels unavailable here: {native.native_status().reason}"
)


def dot_bound(abs_terms: torch.Tensor, length: int, extra: torch.Tensor | float = 0.0) -> torch.Tensor:
    """gamma_{n} * (sum |terms| + |extra|) + u * |result| slack, n = length + 1 (module docstring)."""
    n = length + 1
    gamma = n * U32 / (1 - n * U32)
    total = abs_terms + (extra.abs() if isinstance(extra, torch.Tensor) else abs(extra))
    return gamma * total + U32 * total + 1e-30


def rand(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def act64(z, activation, slope=0.2):
    if activation == "relu":
        return z.clamp_min(0)
    if activation == "leaky_relu":
        return torch.where(z > 0, z, slope * z)
    if activation == "tanh":
        return torch.tanh(z)
    return z


shapes = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 70), st.integers(1, 140))


@needs_kernels
@settings(max_examples=40)
@given(shape=shapes, bias=st.booleans(), accumulate=st.booleans(), activation=st.sampled_from([None, "relu", "leaky_relu", "tanh"]), seed=st.integers(0, 10**6))
def test_bmm_nn_matches_float64(shape, bias, accumulate, activation, seed):
    b, M, K, N = shape
    if bias and accumulate:
        return  # excluded combination (tested below to raise)
    A, B = rand(b, M, K, seed=seed), rand(b, K, N, seed=seed + 1)
    c = rand(b, 1, N, seed=seed + 2) if bias else None
    out = rand(b, M, N, seed=seed + 3)
    start = out.double().clone()
    with native.backend("native"):
        native.bmm_nn(A, B, out, bias=c, accumulate=accumulate, activation=activation, negative_slope=0.2)
    z = A.double() @ B.double()
    extra = start if accumulate else (c.double().expand(b, M, N) if bias else torch.zeros(b, M, N, dtype=torch.float64))
    z = z + extra
    bound = dot_bound(A.double().abs() @ B.double().abs(), K, extra)
    # relu, leaky (|slope| <= 1) and tanh (1-Lipschitz) do not enlarge an input error
    assert torch.all((out.double() - act64(z, activation)).abs() <= bound + 2 * U32 * act64(z, activation).abs())


@needs_kernels
@settings(max_examples=40)
@given(shape=shapes, accumulate=st.booleans(), with_bias=st.booleans(), seed=st.integers(0, 10**6))
def test_bmm_tn_and_bias_gradient_match_float64(shape, accumulate, with_bias, seed):
    b, M, K, N = shape
    A, G = rand(b, M, K, seed=seed), rand(b, M, N, seed=seed + 1)
    out, gb = rand(b, K, N, seed=seed + 2), rand(b, 1, N, seed=seed + 3)
    out0, gb0 = out.double().clone(), gb.double().clone()
    with native.backend("native"):
        native.bmm_tn(A, G, out, accumulate=accumulate, bias_grad=gb if with_bias else None)
    extra = out0 if accumulate else 0.0
    ref = A.double().transpose(1, 2) @ G.double() + extra
    assert torch.all((out.double() - ref).abs() <= dot_bound(A.double().abs().transpose(1, 2) @ G.double().abs(), M, extra))
    if with_bias:
        extra = gb0 if accumulate else 0.0
        ref = G.double().sum(1, keepdim=True) + extra
        assert torch.all((gb.double() - ref).abs() <= dot_bound(G.double().abs().sum(1, keepdim=True), M, extra))
    else:
        assert torch.equal(gb.double(), gb0)  # untouched


@needs_kernels
@settings(max_examples=40)
@given(shape=shapes, activation=st.sampled_from([None, "relu", "leaky_relu", "tanh"]), seed=st.integers(0, 10**6))
def test_bmm_nt_with_activation_backward_matches_float64(shape, activation, seed):
    b, M, N, K = shape
    G, W = rand(b, M, N, seed=seed), rand(b, K, N, seed=seed + 1)
    H = act64(rand(b, M, K, seed=seed + 2), activation).float()  # a stored activation output
    out = torch.empty(b, M, K)
    with native.backend("native"):
        native.bmm_nt(G, W, out, activation=activation, activation_output=H, negative_slope=0.2)
    if activation == "relu":
        deriv = (H > 0).double()
    elif activation == "leaky_relu":
        deriv = torch.where(H > 0, 1.0, 0.2).double()
    elif activation == "tanh":
        deriv = 1 - H.double() ** 2
    else:
        deriv = torch.ones_like(H, dtype=torch.float64)
    ref = (G.double() @ W.double().transpose(1, 2)) * deriv
    bound = dot_bound(G.double().abs() @ W.double().abs().transpose(1, 2), N) * deriv.abs() * (1 + 4 * U32) + 4 * U32 * ref.abs()
    assert torch.all((out.double() - ref).abs() <= bound)


@needs_kernels
@settings(max_examples=30)
@given(b=st.integers(1, 3), M=st.integers(1, 50), K=st.integers(1, 90), bias=st.booleans(), seed=st.integers(0, 10**6))
def test_bmv_matches_float64(b, M, K, bias, seed):
    H, w = rand(b, M, K, seed=seed), rand(b, K, 1, seed=seed + 1)
    c = rand(b, 1, 1, seed=seed + 2) if bias else None
    out = torch.empty(b, M, 1)
    with native.backend("native"):
        native.bmv(H, w, out, bias=c)
    extra = c.double().expand(b, M, 1) if bias else 0.0
    ref = H.double() @ w.double() + extra
    assert torch.all((out.double() - ref).abs() <= dot_bound(H.double().abs() @ w.double().abs(), K, extra))


@needs_kernels
def test_adam_step_matches_torch_optim_adam():
    """200 steps on a fixed gradient sequence: the kernel against torch.optim.Adam in float64.

    The float32 run rounds p to float32 after every step (error <= u |p|) and computes each
    update with a relative error of a few u (the update is <= lr / (1 - beta1) = 2e-3), so
    after T steps |p32 - p64| <= T u (max |p| + 1) with room to spare. A wrong formula moves p
    by a sizeable fraction of lr per step (without bias correction, the first step alone is
    ~16 lr here)."""
    n, steps = 1000, 200
    p32 = rand(n, seed=0)
    p_init = p32.clone()
    p64 = torch.nn.Parameter(p32.double().clone())
    opt = torch.optim.Adam([p64], lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
    m, v, d = torch.zeros(n), torch.zeros(n), torch.empty(n)
    with native.backend("native"):
        for t in range(1, steps + 1):
            g = rand(n, seed=t)
            native.adam_step(p32, g, m, v, d, step=t, lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
            p64.grad = g.double()
            opt.step()
    tol = steps * U32 * (p64.detach().abs().max().item() + 1)
    assert (p32.double() - p64.detach()).abs().max().item() <= tol
    assert (p32 - p_init).abs().max() > 1e-2  # it moved


def test_torch_fallback_for_float64_and_non_contiguous():
    A, B = rand(2, 5, 3, seed=1).double(), rand(2, 3, 4, seed=2).double()
    out = torch.empty(2, 5, 4, dtype=torch.float64)
    native.bmm_nn(A, B, out, activation="relu")
    assert torch.equal(out, torch.bmm(A, B).clamp_min(0))
    At = rand(2, 3, 5, seed=3).transpose(1, 2)  # last dimension not contiguous
    out32 = torch.empty(2, 5, 4)
    native.bmm_nn(At, B.float(), out32)
    assert torch.equal(out32, torch.bmm(At, B.float()))


def test_bad_shapes_raise():
    A, B = torch.ones(2, 3, 4), torch.ones(2, 4, 5)
    with pytest.raises(ValueError, match="out must have shape"):
        native.bmm_nn(A, B, torch.empty(2, 3, 6))
    with pytest.raises(ValueError, match="B must have shape"):
        native.bmm_nn(A, torch.ones(2, 5, 5), torch.empty(2, 3, 5))
    with pytest.raises(ValueError, match="3-d tensor"):
        native.bmm_tn(torch.ones(3, 4), torch.ones(3, 5), torch.empty(4, 5))
    with pytest.raises(ValueError, match="exclude"):
        native.bmm_nn(A, B, torch.empty(2, 3, 5), bias=torch.ones(2, 1, 5), accumulate=True)
    with pytest.raises(ValueError, match="needs activation_output"):
        native.bmm_nt(torch.ones(1, 2, 3), torch.ones(1, 4, 3), torch.empty(1, 2, 4), activation="relu")
    with pytest.raises(ValueError, match="activation must be"):
        native.bmm_nn(A, B, torch.empty(2, 3, 5), activation="gelu")
    with pytest.raises(ValueError, match="backend"):
        native.set_backend("mkl")


def test_backend_context_restores_and_unavailable_native_says_why(monkeypatch):
    before = native.get_backend()
    with native.backend("torch"):
        assert native.get_backend() == "torch" and not native.active()
    assert native.get_backend() == before
    monkeypatch.setattr(native, "_status", native.NativeStatus(False, "no compiler here (test)", None))
    monkeypatch.setattr(native, "_lib", None)
    assert not native.active() and "no compiler here" in native.describe()
    with pytest.raises(RuntimeError, match="no compiler here"):
        native.set_backend("native")
    out = native.bmm_nn(torch.ones(1, 2, 3), torch.ones(1, 3, 2), torch.empty(1, 2, 2))  # the torch path
    assert torch.equal(out, torch.full((1, 2, 2), 3.0))


@pytest.fixture
def fresh_native(monkeypatch):
    """native_status() computed anew inside the test (environment changes apply); the module's state is restored after."""
    monkeypatch.setattr(native, "_status", None)
    monkeypatch.setattr(native, "_lib", None)
    return monkeypatch


def _block_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    return {"GANGEN_CACHE_DIR": str(blocker / "cache")}  # a folder inside a file cannot be made


@pytest.mark.parametrize(
    "environment,reason",
    [
        (lambda tmp: {"CC": str(tmp / "no-such-compiler"), "GANGEN_CACHE_DIR": str(tmp / "cache")}, "no-such-compiler"),
        (_block_cache_dir, "GANGEN_CACHE_DIR"),
        (lambda tmp: {"GANGEN_CACHE_DIR": str(tmp / ("x" * 300))}, "GANGEN_CACHE_DIR"),  # a name too long for the file system
    ],
    ids=["no compiler", "unwritable cache", "over-long cache path"],
)
def test_build_failures_are_reported_not_raised(fresh_native, tmp_path, environment, reason):
    if native.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the kernels are x86-64 only; nothing is compiled here")
    for key, value in environment(tmp_path).items():
        fresh_native.setenv(key, value)
    status = native.native_status()
    assert not status.available and reason in status.reason


@needs_kernels
def test_compiled_library_is_cached_by_source_and_compiler(fresh_native, tmp_path):
    fresh_native.setenv("GANGEN_CACHE_DIR", str(tmp_path))
    status = native.native_status()
    assert status.available and status.path is not None and status.path.startswith(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [status.path.rsplit("/", 1)[1]]  # no temporary left behind


# ------------------------------------------------------------------ the engine under both backends
def _data(K, m, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, m, d)).astype(np.float32), (rng.normal(size=(K, m, d)) + 0.5).astype(np.float32)


@needs_kernels
@pytest.mark.parametrize("activation,head,phi", [("relu", "sigmoid", "log"), ("leaky_relu", "sigmoid", "identity"), ("tanh", "linear", "identity")])
def test_engine_native_and_torch_agree(activation, head, phi):
    """One gradient evaluation: the two backends agree to the autograd tolerance of
    tests/test_ensemble.py (both are checked against autograd there, the default backend
    directly). 60 Adam steps: no tight a priori bound exists (Adam turns the rounding of a
    near-zero gradient coordinate into an update of up to lr), so the check is relative,
    2e-3 of |J|; measured differences were 3e-6 to 2e-4 (J 0.7 to 10.7)."""
    fam = MLPFamily(d=5, hidden=(20, 12), activation=activation, head=head)
    x, y = _data(4, 60, 5)
    params = fam.init(range(4))
    runs, grads = {}, {}
    for name in ("native", "torch"):
        with native.backend(name):
            grads[name] = value_and_grad(params, x, y, family=fam, phi=phi, device="cpu")
            runs[name] = train_ensemble(x, y, family=fam, seeds=range(4), phi=phi, steps=60, lr=1e-2, device="cpu", plan=ChunkPlan(2, 64, 1))
    np.testing.assert_allclose(grads["native"][0], grads["torch"][0], rtol=0, atol=1e-6)
    g = grads["torch"][1]
    np.testing.assert_allclose(grads["native"][1], g, rtol=0, atol=1e-6 * max(1.0, np.abs(g).max()))
    np.testing.assert_allclose(runs["native"].values, runs["torch"].values, rtol=2e-3, atol=0)
    assert np.all(np.abs(runs["native"].values) > 0.1)  # trained to something measurable


@pytest.mark.parametrize("name", ["native", "torch"])
def test_engine_member_alone_equals_member_in_batch_bit_for_bit_per_backend(name):
    if name == "native" and not native.native_status().available:
        pytest.skip(native.native_status().reason)
    fam = MLPFamily(d=4, hidden=(9, 7))
    x, y = _data(5, 33, 4, seed=3)
    with native.backend(name):
        batch = train_ensemble(x, y, family=fam, seeds=range(5), steps=40, lr=1e-2, device="cpu", plan="per_member")
        alone = train_ensemble(x[3:4], y[3:4], family=fam, seeds=[3], steps=40, lr=1e-2, device="cpu", plan="per_member")
    assert np.array_equal(batch.params[3], alone.params[0]) and batch.values[3] == alone.values[0]


@needs_kernels
def test_nan_propagates_through_relu_as_in_torch():
    """A diverged member must stay visibly NaN: relu(NaN) = NaN, and its backward passes the gradient at NaN."""
    A = torch.tensor([[[float("nan"), 1.0]]])
    B = torch.ones(1, 2, 3)
    outs = {}
    for name in ("native", "torch"):
        with native.backend(name):
            fwd = native.bmm_nn(A, B, torch.empty(1, 1, 3), activation="relu")
            a = torch.tensor([[[float("nan"), 1.0, 0.0]]])
            bwd = native.bmm_nt(torch.ones(1, 1, 2), torch.ones(1, 3, 2), torch.empty(1, 1, 3), activation="relu", activation_output=a)
            outs[name] = (fwd, bwd)
    assert torch.isnan(outs["native"][0]).all() and torch.isnan(outs["torch"][0]).all()
    assert torch.equal(outs["native"][1], outs["torch"][1]) and outs["native"][1].tolist() == [[[2.0, 2.0, 0.0]]]


def test_adam_and_bmv_check_their_operands():
    p = torch.zeros(100)
    with pytest.raises(ValueError, match="grad has 10 entries but param has 100"):
        native.adam_step(p, torch.ones(10), torch.zeros(100), torch.zeros(100), torch.empty(100), step=1, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    H, w = torch.ones(1, 2, 3), torch.ones(1, 3, 1, dtype=torch.float64)
    # a float64 w takes the torch path (the kernel is never handed float64 memory): the right value, 3
    assert native.bmv(H, w, torch.empty(1, 2, 1)).tolist() == [[[3.0], [3.0]]]
    with pytest.raises(ValueError, match="negative_slope"):
        native.bmm_nt(torch.ones(1, 2, 3), torch.ones(1, 4, 3), torch.empty(1, 2, 4), activation="leaky_relu",
                      activation_output=torch.ones(1, 2, 4), negative_slope=-0.5)
