"""bayes/kernels.py against a plain NumPy transcription of what its docstring promises.

The reference below is written from the documented algorithm (Robbins-Monro on the log
scale towards the target acceptance, Welford variance in windows ending at 20/50/80% of
warm-up with Stan's shrinkage, a restart of the scale at 2.38/sqrt(d), frozen afterwards),
not from the code: the two share only the random draws. A kernel that adapts at the wrong
step, shrinks the wrong way or keeps adapting after warm-up leaves the reference's path.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgen.bayes import kernels

SCALES = np.array([1.0, 10.0, 0.1], np.float32)


def _log_density_np(x):
    return -0.5 * float(np.sum((x / SCALES) ** 2))


def _log_density(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


class _Reference:
    def __init__(self, x, num_warmup, target):
        self.x, self.lp, self.t, self.d = np.array(x, np.float64), _log_density_np(x), 0, x.shape[0]
        self.log_scale, self.std = np.log(2.38 / np.sqrt(self.d)), np.ones(self.d)
        self.n, self.mean, self.m2 = 0, np.zeros(self.d), np.zeros(self.d)
        self.num_warmup, self.target = num_warmup, target
        self.ends = {int(f * num_warmup) for f in (0.2, 0.5, 0.8)}

    def step(self, key):
        key_move, key_accept = jax.random.split(key)
        noise = np.asarray(jax.random.normal(key_move, (self.d,), jnp.float32), np.float64)
        u = float(jax.random.uniform(key_accept, dtype=jnp.float32))
        proposal = self.x + np.exp(self.log_scale) * self.std * noise
        lp = _log_density_np(proposal)
        accept_prob = min(1.0, np.exp(lp - self.lp))
        accepted = np.log(u) < lp - self.lp
        if accepted:
            self.x, self.lp = proposal, lp
        if self.t < self.num_warmup:  # adaptation, warm-up only
            self.log_scale += (self.t + 1) ** -0.6 * (accept_prob - self.target)
            self.n += 1
            delta = self.x - self.mean
            self.mean = self.mean + delta / self.n
            self.m2 = self.m2 + delta * (self.x - self.mean)
            if self.t + 1 in self.ends and self.n >= 10:
                var = self.m2 / max(self.n - 1, 1)
                self.std = np.sqrt(self.n / (self.n + 5) * var + 1e-3 * 5 / (self.n + 5))
                self.log_scale = np.log(2.38 / np.sqrt(self.d))
                self.n, self.mean, self.m2 = 0, np.zeros(self.d), np.zeros(self.d)
        self.t += 1
        return accept_prob, accepted


@pytest.mark.parametrize("num_warmup, re_estimates", [(50, [10, 25, 40]), (45, [22, 36])])
def test_rwmh_follows_the_documented_adaptation_step_by_step(num_warmup, re_estimates):
    # num_warmup=50: windows end after steps 10, 25, 40, the first with exactly 10 draws (the
    # smallest window that may re-estimate); 45: the first ends after 9 draws, too few, so only
    # two re-estimates. 30 more steps check the proposal stays frozen
    target = 0.3
    x0 = jnp.asarray([0.5, -3.0, 0.05], jnp.float32)
    state = kernels.rwmh_init(x0, _log_density)
    ref = _Reference(np.asarray(x0), num_warmup, target)
    np.testing.assert_allclose(float(state.log_scale), ref.log_scale, rtol=1e-6)
    step = jax.jit(lambda k, s: kernels.rwmh_step(k, s, _log_density, num_warmup=num_warmup, target_accept_prob=target))
    stds = []
    for i, key in enumerate(jax.random.split(jax.random.key(0), num_warmup + 30)):
        state, info = step(key, state)
        accept_prob, accepted = ref.step(key)
        assert bool(info.accepted) == accepted, f"step {i}"
        np.testing.assert_allclose(float(info.accept_prob), accept_prob, rtol=1e-4, atol=1e-6, err_msg=f"step {i}")
        np.testing.assert_allclose(np.asarray(state.position), ref.x, rtol=1e-4, atol=1e-6, err_msg=f"step {i}")
        np.testing.assert_allclose(float(state.log_scale), ref.log_scale, rtol=1e-4, atol=1e-6, err_msg=f"step {i}")
        np.testing.assert_allclose(np.asarray(state.proposal_std), ref.std, rtol=1e-4, err_msg=f"step {i}")
        assert int(state.window_count) == ref.n and int(state.iteration) == i + 1
        stds.append(np.asarray(state.proposal_std))
    # the re-estimates happened where expected (so the test exercises them)
    changes = [i + 1 for i in range(1, len(stds)) if not np.array_equal(stds[i], stds[i - 1])]
    assert changes == re_estimates


def test_run_chain_keeps_every_thinned_post_warmup_state_and_reports_on_schedule():
    calls = []
    step = lambda key, s: (s + 1, s * 10)  # deterministic: the state counts iterations
    collect = lambda s, info: (s, info)
    kept, last = kernels.run_chain(step, collect, jnp.asarray(0), jax.random.key(0), num_warmup=4, num_samples=7,
                                   thinning=2, report=lambda tag, i: calls.append((tag, int(i))), report_every=3,
                                   report_args=("chain",))
    jax.effects_barrier()
    # 7 // 2 = 3 draws after 4 warm-up iterations: states after iterations 5, 7 and 9
    np.testing.assert_array_equal(kept[0], [5, 7, 9])
    np.testing.assert_array_equal(kept[1], [40, 60, 80])  # info of the same iterations
    assert int(last) == 4 + 3 * 2
    assert calls == [("chain", 3), ("chain", 6), ("chain", 9)]
    calls.clear()
    kept, _ = kernels.run_chain(step, collect, jnp.asarray(0), jax.random.key(0), num_warmup=0, num_samples=2,
                                report=lambda i: calls.append(int(i)), report_every=1)
    jax.effects_barrier()
    np.testing.assert_array_equal(kept[0], [1, 2])
    assert calls == [1, 2]
    calls.clear()
    kernels.run_chain(step, collect, jnp.asarray(0), jax.random.key(0), num_warmup=1, num_samples=2,
                      report=lambda i: calls.append(int(i)), report_every=0)  # 0: no progress
    jax.effects_barrier()
    assert calls == []
