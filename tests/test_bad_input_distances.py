"""Every bad input to the non-neural distances raises ValueError/TypeError naming what was expected.

One table of cases: (id, call, exception type, a fragment of the message).
"""

from __future__ import annotations

import numpy as np
import pytest

from gangen.distances.js import empirical_js, js_divergence, knn_js
from gangen.distances.wasserstein import random_directions, sliced_wasserstein, wasserstein

X = np.arange(12.0).reshape(6, 2)  # a valid (n, d) = (6, 2) cloud
Y = X[::-1] + 0.5  # valid, same d
X3 = np.zeros((6, 3))  # mismatched d
EMPTY = np.zeros((0, 2))
WITH_NAN = np.array([[0.0, np.nan], [1.0, 1.0]])
WITH_INF = np.array([[0.0, np.inf], [1.0, 1.0]])
TENSOR_3D = np.zeros((2, 6, 2))
U6 = np.full(6, 1 / 6)

# Cases shared by every function taking two clouds (x, y).
CLOUD_CASES = [
    ("x ndim 3", lambda f: f(TENSOR_3D, Y), ValueError, "shape"),
    ("y ndim 0", lambda f: f(X, 3.0), ValueError, "shape"),
    ("mismatched d", lambda f: f(X, X3), ValueError, "same dimension"),
    ("empty x", lambda f: f(EMPTY, Y), ValueError, "at least one"),
    ("empty y", lambda f: f(X, EMPTY), ValueError, "at least one"),
    ("nan in x", lambda f: f(WITH_NAN, Y), ValueError, "finite"),
    ("inf in y", lambda f: f(X, WITH_INF), ValueError, "finite"),
    ("string x", lambda f: f("abc", Y), TypeError, "array"),
    ("complex y", lambda f: f(X, X + 1j), TypeError, "real"),
    ("ragged x", lambda f: f([[0.0, 1.0], [2.0]], Y), TypeError, "array"),
]
CLOUD_FUNCTIONS = {
    "wasserstein-exact": wasserstein,
    "wasserstein-1d": lambda x, y: wasserstein(x, y, method="1d"),
    "wasserstein-sinkhorn": lambda x, y: wasserstein(x, y, method="sinkhorn"),
    "sliced_wasserstein": sliced_wasserstein,
    "empirical_js": empirical_js,
    "knn_js": lambda x, y: knn_js(x, y, k=2),
}

# Cases specific to one function (weights, methods, orders, options).
SPECIFIC_CASES = [
    ("W negative weights", lambda: wasserstein(X, Y, a=[0.5, 0.5, 0.5, -0.5, 0.0, 0.0]), ValueError, "non-negative"),
    ("W unnormalised weights", lambda: wasserstein(X, Y, b=np.ones(6)), ValueError, "sum to 1"),
    ("W weights wrong length", lambda: wasserstein(X, Y, a=np.full(5, 0.2)), ValueError, "one weight per sample"),
    ("W weights 2-D", lambda: wasserstein(X, Y, a=np.full((6, 1), 1 / 6)), ValueError, "1-D"),
    ("W weights nan", lambda: wasserstein(X, Y, a=[np.nan] * 6), ValueError, "finite"),
    ("W 1d weights unnormalised", lambda: wasserstein(X[:, :1], Y[:, :1], a=np.ones(6), method="1d"), ValueError, "sum to 1"),
    ("W sinkhorn negative weights", lambda: wasserstein(X, Y, b=-U6, method="sinkhorn"), ValueError, "non-negative"),
    ("W unknown method", lambda: wasserstein(X, Y, method="emd"), ValueError, "method must be one of"),
    ("W p < 1", lambda: wasserstein(X, Y, p=0.5), ValueError, ">= 1"),
    ("W p = 0", lambda: wasserstein(X, Y, p=0), ValueError, ">= 1"),
    ("W p inf", lambda: wasserstein(X, Y, p=float("inf")), ValueError, "finite"),
    ("W p nan", lambda: wasserstein(X, Y, p=float("nan")), ValueError, ">= 1"),
    ("W p str", lambda: wasserstein(X, Y, p="1"), TypeError, "real number"),
    ("W p bool", lambda: wasserstein(X, Y, p=True), TypeError, "real number"),
    ("W 1d with d=2", lambda: wasserstein(X, Y, method="1d"), ValueError, "d = 1"),
    ("W reg <= 0", lambda: wasserstein(X, Y, method="sinkhorn", reg=0.0), ValueError, "reg"),
    ("W num_iter_max 0", lambda: wasserstein(X, Y, num_iter_max=0), ValueError, "num_iter_max"),
    ("W num_iter_max float", lambda: wasserstein(X, Y, num_iter_max=1e6), TypeError, "num_iter_max"),
    ("SW negative weights", lambda: sliced_wasserstein(X, Y, a=[0.5, 0.5, 0.5, -0.5, 0.0, 0.0]), ValueError, "non-negative"),
    ("SW unnormalised weights", lambda: sliced_wasserstein(X, Y, b=np.full(6, 0.5)), ValueError, "sum to 1"),
    ("SW p < 1", lambda: sliced_wasserstein(X, Y, p=0.99), ValueError, ">= 1"),
    ("SW n_projections 0", lambda: sliced_wasserstein(X, Y, n_projections=0), ValueError, "n_projections"),
    ("SW seed negative", lambda: sliced_wasserstein(X, Y, seed=-1), ValueError, "seed"),
    ("SW seed float", lambda: sliced_wasserstein(X, Y, seed=0.5), TypeError, "seed"),
    ("directions d 0", lambda: random_directions(0, 3), ValueError, "d must"),
    ("JS p 2-D", lambda: js_divergence([[0.5, 0.5]], [[0.5, 0.5]]), ValueError, "1-D"),
    ("JS scalar", lambda: js_divergence(1.0, 1.0), TypeError, "1-D"),
    ("JS empty", lambda: js_divergence([], []), ValueError, "non-empty"),
    ("JS mismatched length", lambda: js_divergence([0.5, 0.5], [1.0, 0.0, 0.0]), ValueError, "same length"),
    ("JS negative", lambda: js_divergence([1.5, -0.5], [0.5, 0.5]), ValueError, "non-negative"),
    ("JS unnormalised", lambda: js_divergence([1.0, 1.0], [0.5, 0.5]), ValueError, "sum to 1"),
    ("JS nan", lambda: js_divergence([np.nan, 1.0], [0.5, 0.5]), ValueError, "finite"),
    ("JS inf", lambda: js_divergence([0.5, 0.5], [np.inf, 0.0]), ValueError, "finite"),
    ("JS string", lambda: js_divergence("ab", [0.5, 0.5]), TypeError, "array of numbers"),
    ("kNN k 0", lambda: knn_js(X, Y, k=0), ValueError, "k must"),
    ("kNN k float", lambda: knn_js(X, Y, k=2.0), TypeError, "k must"),
    ("kNN n <= k", lambda: knn_js(X, Y, k=6), ValueError, "more than k=6"),
    ("kNN duplicates", lambda: knn_js(np.zeros((10, 2)), Y, k=2), ValueError, "empirical_js"),
    ("kNN seed bad", lambda: knn_js(X, Y[:5], k=2, seed="x"), TypeError, "seed"),
]


@pytest.mark.parametrize("function_name", list(CLOUD_FUNCTIONS))
@pytest.mark.parametrize("case, call, exc, fragment", CLOUD_CASES, ids=[c[0] for c in CLOUD_CASES])
def test_bad_clouds_raise(function_name, case, call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call(CLOUD_FUNCTIONS[function_name])


@pytest.mark.parametrize("case, call, exc, fragment", SPECIFIC_CASES, ids=[c[0] for c in SPECIFIC_CASES])
def test_bad_options_raise(case, call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_the_valid_inputs_of_the_table_are_accepted():
    # The table's cases differ from these calls only in the one bad argument (method="1d" also
    # needs d = 1; the cloud cases above fail their own check before that one).
    for name, f in CLOUD_FUNCTIONS.items():
        x, y = (X[:, :1], Y[:, :1]) if name == "wasserstein-1d" else (X, Y)
        value = f(x, y)
        assert type(value) is float and np.isfinite(value)
    assert wasserstein(X, Y, a=U6, b=U6, method="sinkhorn", p=2) >= 0.0
    assert js_divergence([0.5, 0.5], [1.0, 0.0]) > 0.0
    assert np.isfinite(knn_js(X, Y[:5], k=2, seed=1))


def test_messages_say_what_arrived():
    with pytest.raises(ValueError, match=r"d=2 for x .* d=3 for y"):
        wasserstein(X, X3)
    with pytest.raises(ValueError, match="got 'emd'"):
        wasserstein(X, Y, method="emd")
    with pytest.raises(ValueError, match="got 0.5"):
        wasserstein(X, Y, p=0.5)
    with pytest.raises(ValueError, match=r"got sum 2"):
        js_divergence([1.0, 1.0], [0.5, 0.5])
