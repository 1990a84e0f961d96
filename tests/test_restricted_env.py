from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from tianshou_qmle.env.restricted import (
    RESTRICTED_TASKS,
    SPHERE_LAYOUTS,
    RestrictedActionWrapper,
    make_restricted_env,
    make_restricted_vector_envs,
    paper_radius,
    paper_sphere_count,
    resolve_restricted_task,
)

TASKS = list(RESTRICTED_TASKS)
# Valid shares of the box that the brief reports for the authors' settings.
PAPER_VALID_FRACTIONS = {
    "Hopper": 0.88, "Walker2d": 0.76, "InvertedPendulum": 0.79, "InvertedDoublePendulum": 0.79,
}


def one_valid_and_one_invalid(env: RestrictedActionWrapper) -> tuple[np.ndarray, np.ndarray]:
    space = env.action_space
    rng = np.random.default_rng(0)
    candidates = rng.uniform(space.low, space.high, size=(2000, space.shape[0])).astype(np.float32)
    valid = env.is_valid_batch(candidates)
    assert valid.any() and not valid.all()
    return candidates[valid][0], candidates[~valid][0]


def step_plain_env(env_id: str, seed: int, action: np.ndarray) -> tuple[np.ndarray, float]:
    plain = gym.make(env_id)
    plain.reset(seed=seed)
    obs, reward, *_ = plain.step(action)
    return obs, float(reward)


@pytest.mark.parametrize("task", TASKS)
def test_valid_action_runs_unchanged_and_invalid_one_is_replaced_by_the_rule(task):
    spec = RESTRICTED_TASKS[task]
    env = make_restricted_env(task)
    valid_action, invalid_action = one_valid_and_one_invalid(env)
    expected_replacement = (
        np.zeros_like(invalid_action) if spec.invalid_rule == "zeros" else np.full_like(invalid_action, -1.0)
    )
    for action, is_valid, executed in (
        (valid_action, True, valid_action), (invalid_action, False, expected_replacement),
    ):
        env.reset(seed=7)
        obs, _, _, _, info = env.step(action)
        assert info["action_valid"] is is_valid
        np.testing.assert_array_equal(info["executed_action"], executed)
        plain_obs, _ = step_plain_env(spec.env_id, 7, executed)
        np.testing.assert_array_equal(obs, plain_obs)
    # The replacement does change the dynamics: executing the invalid action itself differs.
    raw_obs, _ = step_plain_env(spec.env_id, 7, invalid_action)
    assert not np.array_equal(raw_obs, obs)


@pytest.mark.parametrize("layout", SPHERE_LAYOUTS)
def test_minus_one_rule_pushes_the_pendulum_cart_with_minus_one_in_env_units(layout):
    env = make_restricted_env("InvertedPendulum", seed=0, layout=layout)
    np.testing.assert_array_equal(env.replacement_action, [-1.0])  # Box(-3, 3): −1 N, not the bound
    invalid = next(x for x in np.linspace(-3, 3, 601) if not env.is_valid(np.array([x])))
    _, _, _, _, info = env.step(np.array([invalid], dtype=np.float32))
    np.testing.assert_array_equal(info["executed_action"], [-1.0])


def test_the_zero_action_is_valid_in_the_paper_layout_and_not_in_the_compact_one():
    for task in ("InvertedPendulum", "Hopper", "Walker2d"):
        d = make_restricted_env(task).action_space.shape[0]
        assert make_restricted_env(task).is_valid(np.zeros(d))
    assert not make_restricted_env("InvertedPendulum", layout="compact").is_valid(np.zeros(1))


@pytest.mark.parametrize(("task", "spheres", "radius"), [
    ("Hopper", 99, 0.3855), ("Walker2d", 198, 0.7800), ("InvertedPendulum", 33, 0.0545),
])
def test_paper_layout_is_33_spheres_per_dimension_from_seed_123(task, spheres, radius):
    env = make_restricted_env(task)
    d = env.action_space.shape[0]
    assert env.layout == "paper" and paper_sphere_count(d) == spheres == len(env.centres)
    assert env.radius == pytest.approx(radius, abs=1e-4) == paper_radius(d)
    # centres uniform in the [0, 1]-scaled box from RandomState(123), here in [-1, 1] units
    np.testing.assert_allclose(env.centres, 2 * np.random.RandomState(123).random_sample((spheres, d)) - 1)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("layout", SPHERE_LAYOUTS)
def test_documented_valid_shares_and_region_counts_hold(task, layout):
    env = make_restricted_env(task, layout=layout)
    documented = RESTRICTED_TASKS[task].spheres(layout)
    assert abs(env.valid_fraction(num_samples=50_000, seed=1) - documented.valid_fraction) <= 0.01
    assert abs(env.valid_fraction(num_samples=50_000) - PAPER_VALID_FRACTIONS[task]) <= 0.03
    assert env.valid_regions() == documented.regions


def test_the_paper_layout_is_more_fragmented_than_the_compact_one():
    # the geometry the issue measured: six valid intervals instead of three on the pendulums, and
    # several separate invalid pockets in Hopper's action cube instead of one
    assert make_restricted_env("InvertedPendulum").valid_regions() == (6, 6)
    assert make_restricted_env("InvertedPendulum", layout="compact").valid_regions() == (3, 3)
    assert make_restricted_env("Hopper").valid_regions()[1] > make_restricted_env(
        "Hopper", layout="compact").valid_regions()[1]


@pytest.mark.parametrize("task", TASKS)
def test_vectorised_validity_agrees_with_the_scalar_check(task):
    env = make_restricted_env(task)
    space = env.action_space
    width = space.high - space.low
    # Reach beyond the box, so clipping is exercised too.
    actions = np.random.default_rng(1).uniform(space.low - 0.2 * width, space.high + 0.2 * width,
                                               size=(500, space.shape[0]))
    batch = env.is_valid_batch(actions)
    assert batch.dtype == bool and batch.shape == (500,)
    assert 0 < batch.sum() < 500
    assert [env.is_valid(a) for a in actions] == batch.tolist()


def test_spheres_live_in_the_normalised_box():
    # Same spheres on Box(-3, 3) and Box(-1, 1): validity must be scale-free.
    wide = make_restricted_env("InvertedPendulum", layout="compact")
    narrow = make_restricted_env("InvertedDoublePendulum", layout="compact")
    np.testing.assert_array_equal(wide.centres, narrow.centres)
    xs = np.linspace(-1.0, 1.0, 401)[:, None]
    np.testing.assert_array_equal(wide.is_valid_batch(3.0 * xs), narrow.is_valid_batch(xs))
    for centre in wide.centres:
        assert wide.is_valid(3.0 * centre) and narrow.is_valid(centre)


def test_one_dimensional_valid_set_is_a_union_of_intervals():
    env = make_restricted_env("InvertedDoublePendulum", num_spheres=2, radius=0.1, sphere_seed=3)
    xs = np.linspace(-1.0, 1.0, 20_001)
    expected = np.zeros_like(xs, dtype=bool)
    for (c,) in env.centres:
        expected |= (xs >= c - 0.1) & (xs <= c + 0.1)
    np.testing.assert_array_equal(env.is_valid_batch(xs[:, None]), expected)


def test_out_of_box_actions_are_judged_and_executed_clipped():
    env = make_restricted_env("InvertedDoublePendulum", seed=0, layout="compact")
    assert env.is_valid(np.array([5.0])) == env.is_valid(np.array([1.0]))
    assert env.is_valid(np.array([-5.0])) == env.is_valid(np.array([-1.0]))
    # −1 (the low bound) is valid with the defaults, so −5 runs as −1.
    assert env.is_valid(np.array([-1.0]))
    _, _, _, _, info = env.step(np.array([-5.0], dtype=np.float32))
    np.testing.assert_array_equal(info["executed_action"], [-1.0])


def test_documented_settings_are_the_table_in_the_module_docs():
    import tianshou_qmle.env.restricted as restricted

    table = restricted.RESTRICTED_TASKS.__doc__ or restricted.__doc__
    source = Path(restricted.__file__).read_text(encoding="utf-8")
    for task in ("Hopper", "Walker2d"):
        for layout in SPHERE_LAYOUTS:
            spheres = RESTRICTED_TASKS[task].spheres(layout)
            rows = [line.split() for line in source.splitlines()
                    if line.startswith(task) and f" {layout} " in line]
            assert len(rows) == 1 and f"{spheres.valid_fraction:.3f}" in rows[0], (task, layout)
    del table


def test_valid_fraction_grows_with_radius_and_reaches_one():
    fractions = [
        make_restricted_env("Hopper", radius=r, layout="compact").valid_fraction(num_samples=20_000)
        for r in (0.3, 0.6, 0.9)
    ]
    assert fractions[0] < fractions[1] < fractions[2] < 1.0
    # A sphere of radius 2·sqrt(d) around any point of the box covers the whole box.
    assert make_restricted_env("Hopper", num_spheres=1, radius=2 * np.sqrt(3)).valid_fraction() == 1.0


@pytest.mark.parametrize("task", TASKS)
def test_tasks_construct_with_the_gymnasium_spaces(task):
    spec = RESTRICTED_TASKS[task]
    env = make_restricted_env(task, seed=0)
    plain = gym.make(spec.env_id)
    assert spec.env_id.endswith("-v5")
    assert env.action_space == plain.action_space
    assert env.observation_space == plain.observation_space
    assert env.invalid_rule == spec.invalid_rule
    spheres = spec.spheres("paper")
    assert env.centres.shape == (spheres.num_spheres, plain.action_space.shape[0])
    assert env.radius == spheres.radius and env.invalid_penalty == 0.0


def test_rules_per_task_follow_the_paper():
    assert {t: s.invalid_rule for t, s in RESTRICTED_TASKS.items()} == {
        "Hopper": "zeros", "Walker2d": "zeros",
        "InvertedPendulum": "minus_one", "InvertedDoublePendulum": "minus_one",
    }


@pytest.mark.parametrize(
    "name", ["Hopper", "hopper", "HOPPER", "restricted-hopper", "Restricted_Hopper", "Hopper-v5", "hopper-v5"]
)
def test_task_name_spellings(name):
    assert resolve_restricted_task(name) is RESTRICTED_TASKS["Hopper"]


def test_unknown_task_lists_the_supported_names():
    supported = r"unknown restricted task 'Ant'; supported: Hopper, Walker2d, InvertedPendulum, Inverted"
    with pytest.raises(ValueError, match=supported):
        make_restricted_env("Ant")
    with pytest.raises(ValueError, match="unknown restricted task 'Hopper-v4'"):
        make_restricted_env("Hopper-v4")


def test_penalty_is_subtracted_only_from_invalid_steps():
    env = make_restricted_env("Hopper", invalid_penalty=0.5)
    valid_action, invalid_action = one_valid_and_one_invalid(env)
    for action, penalty in ((valid_action, 0.0), (invalid_action, 0.5)):
        env.reset(seed=3)
        _, reward, _, _, info = env.step(action)
        _, plain_reward = step_plain_env("Hopper-v5", 3, info["executed_action"])
        assert reward == pytest.approx(plain_reward - penalty)


def test_sphere_seed_alone_places_the_spheres():
    a = make_restricted_env("Walker2d", seed=0)
    b = make_restricted_env("Walker2d", seed=123)
    c = make_restricted_env("Walker2d", seed=0, sphere_seed=5)
    np.testing.assert_array_equal(a.centres, b.centres)
    assert not np.array_equal(a.centres, c.centres)
    assert np.all(np.abs(a.centres) <= 1.0)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"num_spheres": 0}, ValueError, "num_spheres must be ≥ 1, got 0"),
        ({"num_spheres": 2.5}, TypeError, "num_spheres must be an int"),
        ({"radius": 0.0}, ValueError, "radius must be a finite number > 0, got 0.0"),
        ({"radius": -1.0}, ValueError, "radius must be a finite number > 0, got -1.0"),
        ({"radius": float("nan")}, ValueError, "radius must be a finite number > 0"),
        ({"invalid_penalty": -0.1}, ValueError, "invalid_penalty must be a finite number ≥ 0, got -0.1"),
        ({"invalid_rule": "clip"}, ValueError, "invalid_rule must be one of .*'zeros'.*'minus_one'.*'clip'"),
        ({"sphere_seed": -1}, ValueError, "sphere_seed must be ≥ 0, got -1"),
        ({"radius": 1e-9}, ValueError, "radius=1e-09.*leave no valid action"),
        ({"spheres": 3}, TypeError, "unknown overrides \\['spheres'\\]"),
    ],
)
def test_bad_settings_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        make_restricted_env("Hopper", **overrides)


def test_non_box_action_space_is_a_type_error():
    with pytest.raises(TypeError, match=r"env\.action_space must be a gymnasium Box, got Discrete"):
        RestrictedActionWrapper(
            gym.make("CartPole-v1"), num_spheres=2, radius=0.5, sphere_seed=0, invalid_rule="zeros"
        )


def test_zeros_rule_needs_zero_inside_the_box():
    class PositiveBox(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.action_space = gym.spaces.Box(0.5, 1.0, shape=(1,), dtype=np.float32)

    with pytest.raises(ValueError, match="zero action inside the action box"):
        RestrictedActionWrapper(
            PositiveBox(gym.make("InvertedDoublePendulum-v5")), num_spheres=2, radius=0.5, sphere_seed=0,
            invalid_rule="zeros",
        )


def test_wrong_action_shapes_are_rejected():
    env = make_restricted_env("Hopper")
    with pytest.raises(ValueError, match=r"action must have shape \(3,\), got \(2,\)"):
        env.is_valid(np.zeros(2))
    with pytest.raises(ValueError, match=r"actions must have shape \[N, 3\], got \(3,\)"):
        env.is_valid_batch(np.zeros(3))


def rollout(envs, actions_per_env: int, steps: int = 5) -> list[np.ndarray]:
    obs, _ = envs.reset()
    trace = [obs]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        action = rng.uniform(-1.0, 1.0, size=(actions_per_env, 3)).astype(np.float32)
        obs, *_ = envs.step(action)
        trace.append(obs)
    return trace


def test_vector_envs_are_seeded_reproducibly_and_share_spheres():
    train_a, test_a = make_restricted_vector_envs("Hopper", num_train_envs=2, num_test_envs=2, seed=4)
    train_b, _ = make_restricted_vector_envs("Hopper", num_train_envs=2, num_test_envs=2, seed=4)
    trace_a, trace_b = rollout(train_a, 2), rollout(train_b, 2)
    for obs_a, obs_b in zip(trace_a, trace_b, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(trace_a[0][0], trace_a[0][1])
    assert not np.array_equal(trace_a[0], test_a.reset()[0])
    centres = [worker.env.env.centres for worker in (*train_a.workers, *test_a.workers)]
    for c in centres:
        np.testing.assert_array_equal(c, centres[0])


def test_vector_envs_pass_overrides_and_reject_bad_counts():
    train, test = make_restricted_vector_envs(
        "InvertedPendulum", num_train_envs=1, num_test_envs=1, seed=0, radius=0.5, invalid_penalty=1.0
    )
    # Tianshou's get_env_attr reads the unwrapped env, so look at the (dummy) workers' wrappers.
    assert [w.env.env.radius for w in train.workers] == [0.5]
    assert [w.env.env.invalid_penalty for w in test.workers] == [1.0]
    with pytest.raises(ValueError, match="num_train_envs"):
        make_restricted_vector_envs("Hopper", num_train_envs=0, num_test_envs=1, seed=0)
