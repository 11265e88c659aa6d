"""Tests for mmva_model.metrics: hand-computed values, scipy/sklearn cross-checks, edge cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score, r2_score

from mmva_model.metrics import (
    REGRESSION_METRICS,
    ccc,
    mae,
    pearson,
    r2,
    retrieval_metrics,
    rmse,
    similarity_spearman,
    spearman,
    va_metrics,
)

Y = [1.0, 2.0, 3.0]
P = [1.0, 2.0, 4.0]


def _random_pair(seed: int = 0, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A correlated but imperfect (truth, prediction) pair."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n)
    return t, 0.7 * t + 0.2 + rng.normal(0, 0.1, n)


# --- regression metrics: hand-computed ---------------------------------------------------------

def test_rmse_by_hand():
    # errors (0, 0, 1) -> mean squared error 1/3 -> rmse sqrt(1/3)
    assert rmse(Y, P) == pytest.approx(math.sqrt(1 / 3))


def test_mae_by_hand():
    # |errors| (0, 0, 1) -> 1/3
    assert mae(Y, P) == pytest.approx(1 / 3)


def test_r2_by_hand():
    # SS_res = 1; mean(y) = 2 -> SS_tot = 1 + 0 + 1 = 2 -> r2 = 1 - 1/2
    assert r2(Y, P) == pytest.approx(0.5)


def test_pearson_by_hand():
    # dy = (-1, 0, 1); mean(p) = 7/3 -> dp = (-4/3, -1/3, 5/3)
    # cov sum = 4/3 + 0 + 5/3 = 3; sum dy^2 = 2; sum dp^2 = (16 + 1 + 25)/9 = 42/9
    # r = 3 / sqrt(2 * 42/9) = 3 / sqrt(28/3)
    assert pearson(Y, P) == pytest.approx(3 / math.sqrt(28 / 3))


def test_ccc_by_hand():
    # population moments: var_y = 2/3, var_p = (42/9)/3 = 14/9, cov = 3/3 = 1,
    # (mean_y - mean_p)^2 = (2 - 7/3)^2 = 1/9
    # ccc = 2*1 / (2/3 + 14/9 + 1/9) = 2 / (21/9) = 6/7
    assert ccc(Y, P) == pytest.approx(6 / 7)


def test_ccc_penalises_bias_where_pearson_does_not():
    # p = y + 1: pearson 1; ccc = 2*(2/3) / (2/3 + 2/3 + 1) = (4/3) / (7/3) = 4/7
    y = np.array(Y)
    assert pearson(y, y + 1) == pytest.approx(1.0)
    assert ccc(y, y + 1) == pytest.approx(4 / 7)
    assert ccc(y, y) == pytest.approx(1.0)


def test_spearman_with_ties_by_hand():
    # a = [1, 2, 2, 3] -> average ranks [1, 2.5, 2.5, 4]; b = [1, 2, 3, 4] -> ranks [1, 2, 3, 4]
    # dra = (-1.5, 0, 0, 1.5), drb = (-1.5, -0.5, 0.5, 1.5)
    # cov sum = 2.25 + 0 + 0 + 2.25 = 4.5; sum dra^2 = 4.5; sum drb^2 = 5 -> rho = 4.5 / sqrt(22.5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_spearman_is_rank_based():
    # a monotone but non-linear map keeps rho = 1 (and reversing it gives -1)
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    assert spearman(x, np.exp(5 * x)) == pytest.approx(1.0)
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)


# --- regression metrics: library cross-checks --------------------------------------------------

def test_against_sklearn_and_scipy():
    t, p = _random_pair()
    assert rmse(t, p) == pytest.approx(math.sqrt(mean_squared_error(t, p)))
    assert mae(t, p) == pytest.approx(mean_absolute_error(t, p))
    assert r2(t, p) == pytest.approx(r2_score(t, p))
    assert pearson(t, p) == pytest.approx(pearsonr(t, p)[0])
    assert spearman(t, p) == pytest.approx(spearmanr(t, p)[0])


def test_spearman_ties_against_scipy():
    a = [3, 1, 2, 2, 5, 5, 5, 0]
    b = [1, 1, 1, 2, 3, 4, 4, 9]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b)[0])


def test_ccc_against_formula_with_numpy_moments():
    t, p = _random_pair(seed=1)
    cov = np.cov(t, p, bias=True)[0, 1]
    expected = 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)
    assert ccc(t, p) == pytest.approx(expected)


# --- degenerate inputs -------------------------------------------------------------------------

def test_constant_inputs_give_nan():
    const = [0.1, 0.1, 0.1]
    assert math.isnan(r2(const, [0.1, 0.2, 0.3]))
    assert math.isnan(pearson(const, [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], const))
    assert math.isnan(spearman(const, [1, 2, 3]))
    assert math.isnan(ccc(const, const))
    # two different constants: cov = 0, denominator = (0.1 - 0.2)^2 > 0 -> 0
    assert ccc(const, [0.2, 0.2, 0.2]) == 0.0
    # r2 of a constant prediction against a varying truth is defined
    assert r2([1, 2, 3], [2, 2, 2]) == pytest.approx(0.0)


@pytest.mark.parametrize("fn", [rmse, mae, r2, pearson, ccc, spearman])
def test_bad_regression_input_raises(fn):
    with pytest.raises(ValueError, match="3 and 2"):
        fn([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-empty"):
        fn([], [])
    with pytest.raises(ValueError, match="finite"):
        fn([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        fn([1, 2, 3], [1, np.inf, 3])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 2]], [[1, 2]])


# --- VA metrics --------------------------------------------------------------------------------

def test_regression_metrics_registry_order():
    assert list(REGRESSION_METRICS) == ["rmse", "mae", "r2", "ccc", "pearson"]


def test_va_metrics_columns():
    va_true = np.column_stack([Y, [0.0, 0.5, 1.0]])
    va_pred = np.column_stack([P, [0.0, 0.5, 1.0]])
    out = va_metrics(va_true, va_pred)
    assert list(out) == ["valence", "arousal"]
    assert list(out["valence"]) == list(REGRESSION_METRICS)
    # valence column is the (Y, P) example above; arousal is a perfect prediction
    assert out["valence"]["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert out["valence"]["ccc"] == pytest.approx(6 / 7)
    assert out["arousal"] == pytest.approx({"rmse": 0.0, "mae": 0.0, "r2": 1.0, "ccc": 1.0, "pearson": 1.0})
    assert all(isinstance(v, float) for d in out.values() for v in d.values())


@pytest.mark.parametrize("shape_t,shape_p", [((3, 2), (3, 3)), ((3, 3), (3, 3)), ((6,), (6,)), ((3, 2), (4, 2))])
def test_va_metrics_bad_shape_raises(shape_t, shape_p):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        va_metrics(np.zeros(shape_t), np.zeros(shape_p))


# --- retrieval ---------------------------------------------------------------------------------

L2, L3, L5 = math.log2(2), math.log2(3), math.log2(5)  # discounts at ranks 1, 2, 4 (log2(4) = 2)


def test_retrieval_tiny_by_hand():
    scores = [[0.1, 0.9, 0.3, 0.2],
              [0.5, 0.4, 0.3, 0.6]]
    relevance = [[1.0, 0.5, 0.0, 0.25],
                 [0.2, 0.2, 0.9, 0.1]]
    out = retrieval_metrics(scores, relevance, ks=(1, 5, 10), n_relevant=2)
    # q0: predicted order 1,2,3,0; relevant = top-2 by relevance = {0, 1}
    #     R@1 = |{1} ∩ {0,1}| / 2 = 1/2; first relevant at rank 1 -> RR = 1
    #     DCG = 0.5/log2(2) + 0/log2(3) + 0.25/log2(4) + 1.0/log2(5)
    #     IDCG = 1.0/log2(2) + 0.5/log2(3) + 0.25/log2(4) + 0/log2(5)
    # q1: predicted order 3,0,1,2; relevant = {2, 0} (0.2 tie between 0 and 1 -> lower index 0)
    #     R@1 = 0; first relevant (cand 0) at rank 2 -> RR = 1/2
    #     DCG = 0.1/log2(2) + 0.2/log2(3) + 0.2/log2(4) + 0.9/log2(5)
    #     IDCG = 0.9/log2(2) + 0.2/log2(3) + 0.2/log2(4) + 0.1/log2(5)
    # k = 5 and 10 exceed N = 4 so every relevant item is retrieved.
    ndcg0 = (0.5 / L2 + 0.25 / 2 + 1.0 / L5) / (1.0 / L2 + 0.5 / L3 + 0.25 / 2)
    ndcg1 = (0.1 / L2 + 0.2 / L3 + 0.2 / 2 + 0.9 / L5) / (0.9 / L2 + 0.2 / L3 + 0.2 / 2 + 0.1 / L5)
    assert list(out) == ["R@1", "R@5", "R@10", "MRR", "nDCG@10"]
    assert out["R@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["R@5"] == pytest.approx(1.0)
    assert out["R@10"] == pytest.approx(1.0)
    assert out["MRR"] == pytest.approx((1.0 + 0.5) / 2)
    assert out["nDCG@10"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert ndcg0 == pytest.approx(0.7329, abs=1e-4)


def test_retrieval_ndcg_against_sklearn():
    # continuous random scores have no ties, so sklearn's tie averaging does not come into play
    rng = np.random.default_rng(0)
    rel = rng.uniform(0, 1, (6, 30))
    scores = rel + rng.normal(0, 0.3, rel.shape)
    for k in (1, 5, 10):
        got = retrieval_metrics(scores, rel, ks=(1,), ndcg_k=k)[f"nDCG@{k}"]
        assert got == pytest.approx(ndcg_score(rel, scores, k=k))


def test_retrieval_perfect_ranking():
    rng = np.random.default_rng(1)
    rel = rng.uniform(0, 1, (4, 20))
    out = retrieval_metrics(rel, rel, n_relevant=1)
    assert out == pytest.approx({"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "MRR": 1.0, "nDCG@10": 1.0})
    # with 10 relevant items a perfect top-k holds only k of them: R@k = min(k, 10) / 10
    out10 = retrieval_metrics(rel, rel, n_relevant=10)
    assert out10 == pytest.approx({"R@1": 0.1, "R@5": 0.5, "R@10": 1.0, "MRR": 1.0, "nDCG@10": 1.0})


def test_retrieval_reversed_ranking_by_hand():
    rel = np.array([[1.0, 0.75, 0.5, 0.25]])
    out = retrieval_metrics(-rel, rel, ks=(1, 2, 5), n_relevant=2)
    # predicted order 3,2,1,0; relevant = {0, 1}
    # R@1 = 0; R@2 = |{3,2} ∩ {0,1}| / 2 = 0; R@5 (all 4) = 1; first relevant (cand 1) at rank 3 -> MRR 1/3
    # DCG = 0.25/log2(2) + 0.5/log2(3) + 0.75/log2(4) + 1.0/log2(5)
    # IDCG = 1.0/log2(2) + 0.75/log2(3) + 0.5/log2(4) + 0.25/log2(5)
    dcg = 0.25 / L2 + 0.5 / L3 + 0.75 / 2 + 1.0 / L5
    idcg = 1.0 / L2 + 0.75 / L3 + 0.5 / 2 + 0.25 / L5
    assert out["R@1"] == 0.0
    assert out["R@2"] == 0.0
    assert out["R@5"] == 1.0
    assert out["MRR"] == pytest.approx(1 / 3)
    assert out["nDCG@10"] == pytest.approx(dcg / idcg)


def test_retrieval_score_ties_broken_by_index():
    # all scores tie -> predicted order 0,1,2,3; the single relevant item (cand 2) sits at rank 3
    out = retrieval_metrics(np.zeros((1, 4)), [[0.0, 0.0, 1.0, 0.0]], ks=(1, 3), n_relevant=1)
    assert out["R@1"] == 0.0
    assert out["R@3"] == 1.0
    assert out["MRR"] == pytest.approx(1 / 3)
    # DCG = 1/log2(4) = 1/2, IDCG = 1
    assert out["nDCG@10"] == pytest.approx(0.5)


def test_retrieval_relevance_ties_broken_by_index():
    # relevance all equal -> relevant set = lowest indices {0, 1}; scores rank cand 3 then 1 first
    out = retrieval_metrics([[0.0, 0.5, 0.1, 0.9]], np.full((1, 4), 0.5), ks=(1, 2), n_relevant=2)
    # predicted order 3,1,2,0: R@1 = 0, R@2 = 1/2, MRR = 1/2; equal gains -> nDCG = 1
    assert out == pytest.approx({"R@1": 0.0, "R@2": 0.5, "MRR": 0.5, "nDCG@10": 1.0})


def test_retrieval_all_zero_relevance_scores_zero_ndcg():
    out = retrieval_metrics([[0.3, 0.2, 0.1]], np.zeros((1, 3)))
    assert out["nDCG@10"] == 0.0


def test_retrieval_n_relevant_capped_at_n():
    # n_relevant = 10 > N = 3: every candidate is relevant, so R@1 = 1/3 and MRR = 1
    out = retrieval_metrics([[0.3, 0.2, 0.1]], [[0.1, 0.2, 0.3]], ks=(1,))
    assert out["R@1"] == pytest.approx(1 / 3)
    assert out["MRR"] == 1.0


@pytest.mark.parametrize(
    "scores,relevance,kwargs,match",
    [
        (np.zeros((2, 3)), np.zeros((2, 4)), {}, "same"),
        (np.zeros(3), np.zeros(3), {}, "2-D"),
        (np.zeros((2, 0)), np.zeros((2, 0)), {}, "N >= 1"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, "Q >= 1"),
        (np.full((1, 2), np.nan), np.zeros((1, 2)), {}, "finite"),
        (np.zeros((1, 2)), np.array([[0.0, 1.5]]), {}, r"\[0, 1\]"),
        (np.zeros((1, 2)), np.array([[-0.1, 0.5]]), {}, r"\[0, 1\]"),
        (np.zeros((1, 2)), np.zeros((1, 2)), {"ks": (0,)}, "positive"),
        (np.zeros((1, 2)), np.zeros((1, 2)), {"n_relevant": 0}, "positive"),
        (np.zeros((1, 2)), np.zeros((1, 2)), {"ndcg_k": 2.5}, "positive"),
    ],
)
def test_retrieval_bad_input_raises(scores, relevance, kwargs, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(scores, relevance, **kwargs)


# --- similarity agreement ----------------------------------------------------------------------

def test_similarity_spearman():
    target = np.array([[1.0, 0.2], [0.2, 1.0]])
    # flattened target [1, .2, .2, 1] -> ranks [3.5, 1.5, 1.5, 3.5]; a monotone map of it gives rho 1
    assert similarity_spearman(target**2, target) == pytest.approx(1.0)
    pred = np.array([[0.9, 0.1], [0.3, 0.8]])
    assert similarity_spearman(pred, target) == pytest.approx(spearmanr(pred.ravel(), target.ravel())[0])
    with pytest.raises(ValueError, match="same shape"):
        similarity_spearman(np.zeros((2, 2)), np.zeros((2, 3)))
