"""Restricted MuJoCo locomotion (SAVO §5 "Locomotion in Restricted Mujoco" and §11.3.1).

Valid actions lie in a union of hyperspheres of the action space; an invalid action is replaced
before it reaches the simulator: by the zero action in Hopper and Walker2d, by −1 in the env's
units in InvertedPendulum and InvertedDoublePendulum (§11.3.1). This turns easy, convex
Q-landscapes into rugged ones with many local optima (SAVO Fig. 1, 3, 29).

Two layouts of spheres:

* ``"paper"`` (the default): the layout of the paper's experiments, as its authors' released code
  builds it: 33·d spheres whose centres are uniform in the action box scaled to [0, 1]^d, drawn
  from ``numpy.random.RandomState(123)``, all of one radius, that of the d-ball whose volume is
  0.6·d/(33·d) of the box times a per-dimension factor (1.65 for d = 3, 1 for d = 6, 3 for d = 1).
  The paper itself gives neither count nor radius.
* ``"compact"``: the layout this package used before (few, larger spheres with centres uniform in
  [-1, 1]^d from ``numpy.random.default_rng(seed)``): about the same valid share, far fewer
  separate regions.

Both are described here in the normalised box [-1, 1]^d (the env's Box mapped affinely onto it),
so a paper radius r in [0, 1] units is 2r here.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env.dmc import VectorEnvKind, make_gym_env, make_seeded_vector_envs

InvalidRule = Literal["zeros", "minus_one"]
INVALID_RULES: tuple[str, ...] = ("zeros", "minus_one")

SphereLayout = Literal["paper", "compact"]
SPHERE_LAYOUTS: tuple[str, ...] = ("paper", "compact")

PAPER_SPHERES_PER_DIMENSION = 33
PAPER_SPHERE_SEED = 123
PAPER_VALID_VOLUME_PER_DIMENSION = 0.6
PAPER_VOLUME_FACTORS: Mapping[int, float] = MappingProxyType(
    {1: 3.0, 2: 2.0, 3: 1.65, 6: 1.0, 8: 0.5, 17: 20.0}
)
"""The authors' per-dimension factor on each sphere's volume (1 for dimensions they did not tune)."""


def paper_sphere_count(action_dim: int) -> int:
    """33·d spheres (99 for Hopper, 198 for Walker2d, 33 for the pendulums)."""
    return PAPER_SPHERES_PER_DIMENSION * action_dim


def paper_radius(action_dim: int) -> float:
    """The paper layout's radius in normalised [-1, 1] units: twice the radius, in [0, 1] units,
    of the d-ball of volume 0.6·d / (33·d) × factor(d), with V_d(r) = π^{d/2} r^d / Γ(d/2 + 1)."""
    d = action_dim
    volume = PAPER_VALID_VOLUME_PER_DIMENSION * d / paper_sphere_count(d) * PAPER_VOLUME_FACTORS.get(d, 1.0)
    unit_radius = (volume * math.gamma(d / 2 + 1) / math.pi ** (d / 2)) ** (1 / d)
    return 2.0 * unit_radius


def sphere_centres(layout: SphereLayout, *, num_spheres: int, action_dim: int, seed: int) -> np.ndarray:
    """Centres ``[num_spheres, d]`` in normalised units, drawn as ``layout`` draws them."""
    if layout == "paper":
        return 2.0 * np.random.RandomState(seed).random_sample((num_spheres, action_dim)) - 1.0
    if layout == "compact":
        return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(num_spheres, action_dim))
    raise ValueError(f"layout must be one of {SPHERE_LAYOUTS}, got {layout!r}")

# Samples for the construction-time check that some action is valid: cheap (a few ms) and fine
# enough to notice any union of spheres that covers ≥ 1e-4 of the box.
_CHECK_SAMPLES = 100_000


class RestrictedActionWrapper(gym.Wrapper):
    """Only actions inside a union of hyperspheres are executed; others are replaced (SAVO §11.3.1).

    An action (in the env's units) is first clipped to the action box, as MuJoCo clamps controls to
    their range anyway, then mapped affinely to [-1, 1]^d. It is *valid* when it lies within
    ``radius`` (Euclidean, normalised units, boundary included) of one of ``num_spheres`` centres,
    drawn uniformly in the box from ``sphere_seed`` as ``layout`` draws them (see the module
    docstring). Invalid actions are replaced according to ``invalid_rule`` and cost
    ``invalid_penalty``. Non-finite actions are invalid.

    Every ``step`` reports ``info["action_valid"]`` (bool) and ``info["executed_action"]`` (the
    action, in env units, that the simulator received).

    :param env: an environment with a 1-D :class:`gymnasium.spaces.Box` action space with finite
        bounds.
    :param num_spheres: number of hyperspheres whose union is the valid set; an int ≥ 1.
    :param radius: sphere radius in normalised units; > 0. The box has half-width 1, so radii above
        ``sqrt(d)`` make every sphere cover the whole box.
    :param sphere_seed: seeds the centres; an int ≥ 0. Keep it fixed per task so that training and
        test envs (which get different env seeds) share one restriction.
    :param invalid_rule: ``"zeros"`` replaces an invalid action by the zero action (zero torque:
        Hopper, Walker2d; needs 0 inside the box) or ``"minus_one"`` by −1 in the env's units,
        clipped to the box (a push to the left: InvertedPendulum, InvertedDoublePendulum, whose
        force range is [-3, 3]; §11.3.1 sets ``action[:] = -1``).
    :param invalid_penalty: subtracted from the reward of a step whose action was invalid; ≥ 0. The
        paper describes none (0, the default): invalid actions only lose their effect. The
        authors' code adds a reward of −10 (``invalid_penalty=10``) to compare.
    :param layout: how the centres are drawn: ``"paper"`` (uniform in the [0, 1]-scaled box from
        ``RandomState(sphere_seed)``) or ``"compact"`` (uniform in [-1, 1]^d from
        ``default_rng(sphere_seed)``).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        num_spheres: int,
        radius: float,
        sphere_seed: int,
        invalid_rule: InvalidRule,
        invalid_penalty: float = 0.0,
        layout: SphereLayout = "paper",
    ) -> None:
        _check_box_action_space(env.action_space)
        if layout not in SPHERE_LAYOUTS:
            raise ValueError(f"layout must be one of {SPHERE_LAYOUTS}, got {layout!r}")
        _check_int("num_spheres", num_spheres, minimum=1)
        _check_int("sphere_seed", sphere_seed, minimum=0)
        _check_positive_finite("radius", radius)
        _check_invalid_rule(invalid_rule, cast(gym.spaces.Box, env.action_space))
        _check_penalty(invalid_penalty)
        super().__init__(env)
        space = cast(gym.spaces.Box, env.action_space)  # checked above
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self._radius = float(radius)
        self._invalid_rule = invalid_rule
        self._invalid_penalty = float(invalid_penalty)
        self._layout = layout
        self._centres = sphere_centres(layout, num_spheres=num_spheres, action_dim=space.shape[0],
                                       seed=sphere_seed)
        self._replacement = self._replacement_action(space)
        if self.valid_fraction(num_samples=_CHECK_SAMPLES, seed=0) == 0.0:
            raise ValueError(
                f"num_spheres={num_spheres}, radius={radius}, sphere_seed={sphere_seed} leave no valid "
                f"action: none of {_CHECK_SAMPLES} uniform samples of the normalised box lies in a sphere; "
                "use a larger radius or more spheres"
            )

    @property
    def centres(self) -> np.ndarray:
        """Sphere centres in normalised units, ``[num_spheres, d]`` (a copy)."""
        return self._centres.copy()

    @property
    def radius(self) -> float:
        """Sphere radius in normalised units."""
        return self._radius

    @property
    def layout(self) -> SphereLayout:
        """How the centres were drawn: ``"paper"`` or ``"compact"``."""
        return self._layout

    @property
    def invalid_rule(self) -> InvalidRule:
        """How an invalid action is replaced: ``"zeros"`` or ``"minus_one"``."""
        return self._invalid_rule

    @property
    def invalid_penalty(self) -> float:
        """What an invalid action costs in reward."""
        return self._invalid_penalty

    @property
    def replacement_action(self) -> np.ndarray:
        """The action (env units) executed in place of an invalid one (a copy)."""
        return self._replacement.copy()

    def is_valid(self, action: np.ndarray) -> bool:
        """Whether one action ``[d]`` in env units lies in the union of spheres (after clipping)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self._low.shape:
            raise ValueError(f"action must have shape {self._low.shape}, got {action.shape}")
        return bool(self.is_valid_batch(action[None])[0])

    def is_valid_batch(self, actions: np.ndarray) -> np.ndarray:
        """Validity of actions ``[N, d]`` in env units, as a bool array ``[N]``."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self._low.shape[0]:
            raise ValueError(f"actions must have shape [N, {self._low.shape[0]}], got {actions.shape}")
        return self._in_sphere_union(self._normalise(np.clip(actions, self._low, self._high)))

    def valid_fraction(self, num_samples: int = 100_000, seed: int = 0) -> float:
        """Monte-Carlo share of the action box that is valid (uniform samples of the box).

        :param num_samples: number of uniform samples; an int ≥ 1. The standard error is at most
            ``0.5 / sqrt(num_samples)`` (0.0016 for the default).
        :param seed: seeds the samples.
        """
        _check_int("num_samples", num_samples, minimum=1)
        points = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(num_samples, self._low.shape[0]))
        return float(np.mean(self._in_sphere_union(points)))

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        valid = self.is_valid(action)
        executed = self._executed_action(action, valid)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        if not valid:
            reward = float(reward) - self._invalid_penalty
        info = {**info, "action_valid": valid, "executed_action": executed.copy()}
        return obs, reward, terminated, truncated, info

    def _executed_action(self, action: np.ndarray, valid: bool) -> np.ndarray:
        if not valid:
            return self._replacement.copy()
        clipped = np.clip(np.asarray(action, dtype=np.float64), self._low, self._high)
        return clipped.astype(self.action_space.dtype)

    def _replacement_action(self, space: gym.spaces.Box) -> np.ndarray:
        if self._invalid_rule == "zeros":
            return np.zeros(space.shape, dtype=space.dtype)
        return np.clip(np.full(space.shape, -1.0), space.low, space.high).astype(space.dtype)

    def valid_regions(self, *, points_per_dim: int | None = None, min_share: float = 1e-3) -> tuple[int, int]:
        """The numbers of separate valid and invalid regions of the action box.

        One dimension: exact, from the union of intervals. More: face-connected components of a
        grid of ``points_per_dim`` points per dimension (default 10 001, 101, 31, 11 for d = 1, 2,
        3, ≥ 4), counting only regions of at least ``min_share`` of the box, so that grid-sized
        slivers between spheres are not counted.

        :return: ``(valid regions, invalid regions)``.
        """
        d = self._low.shape[0]
        if d == 1:
            return _interval_regions(self._centres[:, 0], self._radius)
        points = points_per_dim or {2: 101, 3: 31}.get(d, 11)
        axis = np.linspace(-1.0, 1.0, points)
        grid = np.stack(np.meshgrid(*([axis] * d), indexing="ij"), axis=-1).reshape(-1, d)
        valid = self._in_sphere_union(grid).reshape([points] * d)
        return (_count_regions(valid, min_share=min_share), _count_regions(~valid, min_share=min_share))

    def _normalise(self, actions: np.ndarray) -> np.ndarray:
        return 2.0 * (actions - self._low) / (self._high - self._low) - 1.0

    def _in_sphere_union(self, points: np.ndarray) -> np.ndarray:
        # One centre at a time keeps memory at [N, d] instead of [N, num_spheres, d].
        inside = np.zeros(points.shape[0], dtype=bool)
        squared_radius = self._radius**2
        for centre in self._centres:
            inside |= np.sum((points - centre) ** 2, axis=1) <= squared_radius
        return inside


def _interval_regions(centres: np.ndarray, radius: float) -> tuple[int, int]:
    """Valid intervals and invalid gaps of a union of intervals [c − r, c + r] within [-1, 1]."""
    intervals = sorted((max(-1.0, c - radius), min(1.0, c + radius)) for c in centres
                       if c + radius >= -1.0 and c - radius <= 1.0)
    merged: list[list[float]] = []
    for low, high in intervals:
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    gaps = len(merged) - 1 + (merged[0][0] > -1.0) + (merged[-1][1] < 1.0) if merged else 1
    return len(merged), int(gaps)


def _count_regions(mask: np.ndarray, *, min_share: float) -> int:
    from scipy import ndimage

    labels, _ = ndimage.label(mask, ndimage.generate_binary_structure(mask.ndim, 1))
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_share * mask.size).sum())


@dataclass(frozen=True)
class SphereSettings:
    """One layout's spheres for one task, and what they leave valid.

    :param num_spheres: number of spheres.
    :param radius: radius in normalised units.
    :param sphere_seed: seed of the centres.
    :param valid_fraction: valid share of the box (:meth:`RestrictedActionWrapper.valid_fraction`,
        100 000 samples, seed 0), rounded.
    :param regions: ``(valid, invalid)`` region counts (:meth:`RestrictedActionWrapper.valid_regions`).
    """

    num_spheres: int
    radius: float
    sphere_seed: int
    valid_fraction: float
    regions: tuple[int, int]


@dataclass(frozen=True)
class RestrictedTask:
    """A restricted task: the gymnasium id, its invalid-action rule and its spheres per layout.

    :param env_id: the gymnasium v5 id, e.g. ``"Hopper-v5"``.
    :param invalid_rule: ``"zeros"`` or ``"minus_one"`` (SAVO §11.3.1).
    :param layouts: :class:`SphereSettings` by layout name (``"paper"``, ``"compact"``).
    """

    env_id: str
    invalid_rule: InvalidRule
    layouts: Mapping[str, SphereSettings]

    def spheres(self, layout: str = "paper") -> SphereSettings:
        if layout not in self.layouts:
            raise ValueError(f"layout must be one of {SPHERE_LAYOUTS}, got {layout!r}")
        return self.layouts[layout]


def _paper(action_dim: int, valid_fraction: float, regions: tuple[int, int]) -> SphereSettings:
    return SphereSettings(num_spheres=paper_sphere_count(action_dim), radius=paper_radius(action_dim),
                          sphere_seed=PAPER_SPHERE_SEED, valid_fraction=valid_fraction, regions=regions)


_PENDULUM_LAYOUTS = MappingProxyType({
    "paper": _paper(1, 0.798, (6, 6)),
    "compact": SphereSettings(num_spheres=4, radius=0.25, sphere_seed=15, valid_fraction=0.794,
                              regions=(3, 3)),
})

RESTRICTED_TASKS: Mapping[str, RestrictedTask] = MappingProxyType({
    "Hopper": RestrictedTask(env_id="Hopper-v5", invalid_rule="zeros", layouts=MappingProxyType({
        "paper": _paper(3, 0.879, (1, 5)),
        "compact": SphereSettings(num_spheres=8, radius=0.9, sphere_seed=1, valid_fraction=0.886,
                                  regions=(1, 1)),
    })),
    "Walker2d": RestrictedTask(env_id="Walker2d-v5", invalid_rule="zeros", layouts=MappingProxyType({
        "paper": _paper(6, 0.766, (1, 1)),
        "compact": SphereSettings(num_spheres=10, radius=1.4, sphere_seed=22, valid_fraction=0.764,
                                  regions=(1, 1)),
    })),
    "InvertedPendulum": RestrictedTask(env_id="InvertedPendulum-v5", invalid_rule="minus_one",
                                       layouts=_PENDULUM_LAYOUTS),
    "InvertedDoublePendulum": RestrictedTask(env_id="InvertedDoublePendulum-v5", invalid_rule="minus_one",
                                             layouts=_PENDULUM_LAYOUTS),
})
"""The four restricted tasks of SAVO (§5, §11.3.1), with both layouts.

Measured here (valid share: 100 000 uniform samples, seed 0; regions: see
:meth:`RestrictedActionWrapper.valid_regions`, regions of at least 0.1 % of the box on grids of
31³ points for Hopper and 11⁶ for Walker2d, exact for the pendulums):

=======================  =======  ========  ======  =====  ===========  =============  ===============
task                     layout   spheres   radius  seed   valid share  valid regions  invalid regions
=======================  =======  ========  ======  =====  ===========  =============  ===============
Hopper (d = 3)           paper    99        0.386   123    0.879        1              5
Hopper                   compact  8         0.9     1      0.886        1              1
Walker2d (d = 6)         paper    198       0.780   123    0.766        1              1 (coarse grid)
Walker2d                 compact  10        1.4     22     0.764        1              1 (coarse grid)
pendulums (d = 1)        paper    33        0.0545  123    0.798        6              6
pendulums                compact  4         0.25    15     0.794        3              3
=======================  =======  ========  ======  =====  ===========  =============  ===============

In the paper layout the zero action is valid on every task; in the compact one it is invalid on
the pendulums, whose compact valid set is [-1, -0.66] ∪ [-0.56, -0.06] ∪ [0.14, 0.88] (normalised).
"""

_OVERRIDABLE = ("num_spheres", "radius", "sphere_seed", "invalid_rule", "invalid_penalty")
DEFAULT_LAYOUT: SphereLayout = "paper"


def resolve_restricted_task(task: str) -> RestrictedTask:
    """The :data:`RESTRICTED_TASKS` entry for a task name.

    :param task: ``"Hopper"``, ``"Walker2d"``, ``"InvertedPendulum"`` or ``"InvertedDoublePendulum"``,
        case-insensitive, optionally prefixed ``"restricted-"`` (or ``"restricted_"``), or the
        gymnasium id (``"Hopper-v5"``).
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}: {task!r}")
    key = task.strip().lower()
    for prefix in ("restricted-", "restricted_"):
        key = key.removeprefix(prefix)
    for name, spec in RESTRICTED_TASKS.items():
        if key in (name.lower(), spec.env_id.lower()):
            return spec
    raise ValueError(
        f"unknown restricted task {task!r}; supported: {', '.join(RESTRICTED_TASKS)} (case-insensitive, "
        "optionally 'restricted-<name>' or the gymnasium id such as 'Hopper-v5')"
    )


def make_restricted_env(
    task: str, seed: int | None = None, *, layout: SphereLayout = DEFAULT_LAYOUT,
    render_mode: str | None = None, **overrides: Any
) -> gym.Env:
    """A restricted MuJoCo task: ``gymnasium.make(env_id)`` in a :class:`RestrictedActionWrapper`.

    :param task: one of :data:`RESTRICTED_TASKS` (see :func:`resolve_restricted_task` for spellings).
    :param seed: seeds the simulator and the action space sampler; None leaves them random. It does
        not move the spheres (``sphere_seed`` does).
    :param layout: ``"paper"`` (the paper's experiments, the default) or ``"compact"`` (this
        package's earlier layout); see the module docstring.
    :param render_mode: gymnasium's ``render_mode`` (e.g. ``"rgb_array"`` for videos).
    :param overrides: replace the layout's defaults: ``num_spheres``, ``radius``, ``sphere_seed``,
        ``invalid_rule``, ``invalid_penalty``.
    """
    spec = resolve_restricted_task(task)
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise TypeError(f"unknown overrides {unknown}; accepted: {', '.join(_OVERRIDABLE)}")
    spheres = spec.spheres(layout)
    settings = {
        "num_spheres": spheres.num_spheres, "radius": spheres.radius, "sphere_seed": spheres.sphere_seed,
        "invalid_rule": spec.invalid_rule, **overrides,
    }
    env = RestrictedActionWrapper(make_gym_env(spec.env_id, render_mode=render_mode), layout=layout,
                                  **settings)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_restricted_vector_envs(
    task: str,
    *,
    num_train_envs: int,
    num_test_envs: int,
    seed: int,
    vector_env: VectorEnvKind = "dummy",
    layout: SphereLayout = DEFAULT_LAYOUT,
    **overrides: Any,
) -> tuple[BaseVectorEnv, BaseVectorEnv]:
    """Training and test Tianshou vector envs of a restricted task, all with the same spheres.

    Seeded as in :func:`tianshou_qmle.env.dmc.make_seeded_vector_envs`: training env ``i`` gets
    ``seed + i``, test env ``j`` gets ``seed + 10_000 + j``.

    :param task: one of :data:`RESTRICTED_TASKS`.
    :param num_train_envs: number of training envs; ≥ 1.
    :param num_test_envs: number of test envs; ≥ 1.
    :param seed: base env seed.
    :param vector_env: ``"dummy"`` (in-process) or ``"subproc"``.
    :param layout: as in :func:`make_restricted_env`.
    :param overrides: as in :func:`make_restricted_env`.
    :return: ``(train_envs, test_envs)``.
    """
    factory = functools.partial(make_restricted_env, task, layout=layout, **overrides)
    _, train_envs, test_envs = make_seeded_vector_envs(
        factory, seed=seed, num_train_envs=num_train_envs, num_test_envs=num_test_envs, kind=vector_env,
    )
    return train_envs, test_envs


def _check_box_action_space(space: gym.Space) -> None:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"env.action_space must be a gymnasium Box, got {type(space).__name__}: {space}")
    if len(space.shape) != 1:
        raise ValueError(f"env.action_space must be a 1-D Box, got shape {space.shape}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"env.action_space must have finite bounds, got low={space.low}, high={space.high}")
    if np.any(space.high <= space.low):
        raise ValueError(f"env.action_space needs high > low in every dimension, got {space}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")


def _check_positive_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    if not (math.isfinite(value) and cast(float, value) > 0):  # numbers.Real stubs lack __gt__
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def _check_penalty(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"invalid_penalty must be a real number, got {type(value).__name__}: {value!r}")
    if not (math.isfinite(value) and cast(float, value) >= 0):  # numbers.Real stubs lack __ge__
        raise ValueError(f"invalid_penalty must be a finite number ≥ 0, got {value}")


def _check_invalid_rule(rule: object, space: gym.spaces.Box) -> None:
    if rule not in INVALID_RULES:
        raise ValueError(f"invalid_rule must be one of {INVALID_RULES}, got {rule!r}")
    if rule == "zeros" and not (np.all(space.low <= 0) and np.all(space.high >= 0)):
        raise ValueError(
            f"invalid_rule='zeros' needs the zero action inside the action box, got low={space.low}, "
            f"high={space.high}; use 'minus_one'"
        )
