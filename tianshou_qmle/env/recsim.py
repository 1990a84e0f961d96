"""A NumPy RecSim-style recommender environment (SAVO §11.2, after Ie et al. 2019 and Jain et al. 2021).

One simulated user per episode; each step the agent recommends one item out of a large catalogue
(``Discrete(num_items)``); the user clicks (reward 1) or skips (reward 0), and a click moves the
user's interest. Items are represented by fixed embeddings, so continuous-action agents (SAVO) can
act in embedding space and map a proto-action to an item by nearest neighbour.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env.dmc import VectorEnvKind, make_seeded_vector_envs

#: SAVO Table 3 (RecSim column): 10,000 actions, "true action dim" 30, "extra action dim" 15
#: (30 + 15 = the "45-D action representation space" of SAVO Fig. 11), episode horizon 20.
PAPER_NUM_ITEMS = 10_000
PAPER_NUM_CATEGORIES = 30
PAPER_NUM_EXTRA_DIMS = 15
PAPER_EPISODE_LENGTH = 20


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {value!r}")
    return int(value)


def _require_float(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a real number in [{low}, {high}], got {value!r}")
    if not (np.isfinite(value) and low <= float(value) <= high):
        raise ValueError(f"{name} must be finite and in [{low}, {high}], got {value!r}")
    return float(value)


def click_probability(score: np.ndarray | float, skip_score: float) -> np.ndarray | float:
    """p_item = e^score / (e^score + e^skip) = sigmoid(score − skip) (SAVO §11.2, the user choice model)."""
    return 1.0 / (1.0 + np.exp(skip_score - np.asarray(score, dtype=np.float64)))


def interest_delta(user_interest: np.ndarray, item_embedding: np.ndarray, interest_step: float) -> np.ndarray:
    """The interest change a click causes: Δ = y · (1 − |e_u|) ⊙ (e_i − e_u) (SAVO §11.2, read as below).

    The paper prints Δ(e_u) = (−y|e_u| + y)·(1 − e_u), which does not mention the item at all
    although the text says the update "pulls the user's preference towards the item that was
    clicked"; we read the factor (1 − e_u) as the direction from the user to the item, (e_i − e_u),
    and keep the paper's (−y|e_u| + y) = y(1 − |e_u|) gain, which slows the change of interests that
    are already strong (|e_u| near 1). With y ∈ [0, 1] and e_u, e_i ∈ [−1, 1]ⁿ, e_u + Δ stays in
    the box (it is a point between e_u and e_i).
    """
    return interest_step * (1.0 - np.abs(user_interest)) * (item_embedding - user_interest)


def sample_item_catalogue(
    *,
    num_items: int,
    num_categories: int,
    num_extra_dims: int,
    item_spread: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items from a Gaussian mixture with one centre per category (SAVO §11.2, after Jain et al. 2021).

    Category ``c``'s centre is the unit vector along axis ``c`` of the interest space, so the
    user-interest coordinate ``c`` is the user's taste for category ``c`` (the paper's "n denotes
    the number of categories"). Categories are assigned uniformly at random; each item is its centre
    plus isotropic Gaussian noise of std ``item_spread``, clipped to [−1, 1]. The extra dimensions
    are item-specific Gaussian features (same std) that the user ignores.

    :return: ``(embeddings [num_items, num_categories], categories [num_items],
        extra features [num_items, num_extra_dims])``, all from one generator seeded with ``seed``.
    """
    rng = np.random.default_rng(seed)
    categories = rng.integers(num_categories, size=num_items)
    noise = rng.normal(0.0, item_spread, size=(num_items, num_categories))
    embeddings = noise
    embeddings[np.arange(num_items), categories] += 1.0
    np.clip(embeddings, -1.0, 1.0, out=embeddings)
    extra = rng.normal(0.0, item_spread, size=(num_items, num_extra_dims))
    return embeddings.astype(np.float32), categories.astype(np.int64), extra.astype(np.float32)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.setflags(write=False)
    return view


class RecSimEnv(gym.Env[np.ndarray, np.int64]):
    """Recommend one of ``num_items`` items per step to a user whose interest drifts with clicks.

    **State** (observation): the user interest e_u ∈ [−1, 1]ⁿ, ``n = num_categories``, drawn
    uniformly from the box at reset.

    **Action**: an item index; item ``i`` has embedding e_i (:attr:`item_embeddings`).

    **Reward** (SAVO §11.2, the RecSim user choice model): score = ⟨e_u, e_i⟩; the user clicks with
    p_item = e^score / (e^score + e^skip_score) (reward 1) and skips otherwise (reward 0).

    **Transition**: on a click, with Δ = y(1 − |e_u|)(e_i − e_u) (see :func:`interest_delta`),
    e_u ← e_u + Δ with probability (1 + ⟨e_u, e_i⟩)/2 and e_u ← e_u − Δ otherwise (the paper's
    probabilities, clipped to [0, 1] because ⟨e_u, e_i⟩ can leave [−1, 1]); e_u is then clipped to
    [−1, 1]. The paper writes the first assignment to e_i, a typo: items are fixed, and the text
    says the user's preference is pulled toward the clicked item. A skip leaves e_u unchanged.
    So well-liked items pull the user further in (interests sharpen toward their category), while
    clicks on disliked items tend to push the user away.

    **Episodes** last ``episode_length`` steps and end with ``truncated=True`` (a time limit: the
    paper's horizon 20, SAVO Table 3); nothing terminates them.

    All items come from :func:`sample_item_catalogue` seeded with ``catalogue_seed`` only, so every
    env built with the same arguments (train and test envs, subprocess workers) shares one catalogue;
    ``reset(seed=...)`` seeds the user (initial interest, clicks, update directions).

    :param num_items: catalogue size, ≥ 2 (paper: 10,000; §14.1 also uses 100k and 500k).
    :param num_categories: item categories = dimension n of user interest and item embeddings, ≥ 1
        (paper: 30, Table 3's "true action dim").
    :param num_extra_dims: distractor dimensions appended to the embeddings in
        :attr:`action_representations`, ≥ 0 (paper: 15, Table 3's "extra action dim"; 30 + 15 make
        the 45-D representation space of SAVO Fig. 11). The user model never reads them.
    :param episode_length: steps per episode, ≥ 1 (paper: 20).
    :param skip_score: the skip option's score in the choice softmax; higher means fewer clicks. The
        paper calls it "empirically decided" without a value; the default 1.0 makes an item exactly
        on a fully liked category (score 1) a coin flip, and a random item (score ≈ 0) a 27 % click.
    :param interest_step: y ∈ [0, 1] in Δ(e_u), how far one click moves the interest (0 freezes the
        user). The paper gives no value; with 0.3 one click moves e_u up to 30 % of the way to the
        item, so the ~5–15 clicks of a 20-step episode change the interest markedly (the state matters).
    :param item_spread: std of the Gaussian mixture components around the category centres, ≥ 0.
    :param catalogue_seed: seeds the item catalogue (not the user); default 0.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}  # type: ignore[misc]  # gymnasium: instance attr

    def __init__(
        self,
        *,
        num_items: int = PAPER_NUM_ITEMS,
        num_categories: int = PAPER_NUM_CATEGORIES,
        num_extra_dims: int = PAPER_NUM_EXTRA_DIMS,
        episode_length: int = PAPER_EPISODE_LENGTH,
        skip_score: float = 1.0,
        interest_step: float = 0.3,
        item_spread: float = 0.1,
        catalogue_seed: int = 0,
    ) -> None:
        self.num_items = _require_int("num_items", num_items, 2)
        self.num_categories = _require_int("num_categories", num_categories, 1)
        self.num_extra_dims = _require_int("num_extra_dims", num_extra_dims, 0)
        self.episode_length = _require_int("episode_length", episode_length, 1)
        self.skip_score = _require_float("skip_score", skip_score, -np.inf, np.inf)
        self.interest_step = _require_float("interest_step", interest_step, 0.0, 1.0)
        self.item_spread = _require_float("item_spread", item_spread, 0.0, np.inf)
        self.catalogue_seed = _require_int("catalogue_seed", catalogue_seed, 0)

        embeddings, categories, extra = sample_item_catalogue(
            num_items=self.num_items, num_categories=self.num_categories,
            num_extra_dims=self.num_extra_dims, item_spread=self.item_spread, seed=self.catalogue_seed,
        )
        self._item_embeddings = embeddings
        self._item_categories = categories
        self._action_representations = np.concatenate([embeddings, extra], axis=1)

        self.action_space = gym.spaces.Discrete(self.num_items)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(self.num_categories,), dtype=np.float32)
        self._user_interest = np.zeros(self.num_categories, dtype=np.float64)
        self._elapsed_steps = 0
        self._needs_reset = True

    # --- the catalogue -------------------------------------------------------------------------

    @property
    def item_embeddings(self) -> np.ndarray:
        """float32 ``[num_items, num_categories]`` item embeddings e_i the user model scores (read-only)."""
        return _read_only(self._item_embeddings)

    @property
    def item_categories(self) -> np.ndarray:
        """int64 ``[num_items]`` mixture component (category) of each item (read-only)."""
        return _read_only(self._item_categories)

    @property
    def action_representations(self) -> np.ndarray:
        """float32 ``[num_items, num_categories + num_extra_dims]``: e_i followed by the distractor
        dimensions, the paper's action representation space (read-only). Its first
        ``num_categories`` columns are :attr:`item_embeddings`."""
        return _read_only(self._action_representations)

    @property
    def user_interest(self) -> np.ndarray:
        """The current user interest e_u as float32 ``[num_categories]`` (a copy)."""
        return self._user_interest.astype(np.float32)

    # --- the user model ------------------------------------------------------------------------

    def click_probabilities(self, user_interest: np.ndarray | None = None) -> np.ndarray:
        """Click probability of every item for ``user_interest`` (default: the current user), ``[num_items]``.

        O(num_items · num_categories): for baselines and analysis, not used by :meth:`step`.
        """
        interest = self._interest_or_current(user_interest)
        return cast(np.ndarray, click_probability(self._scores(interest), self.skip_score))

    def greedy_item(self, user_interest: np.ndarray | None = None) -> int:
        """The myopically best item: the argmax of the click probability (= of ⟨e_u, e_i⟩).

        :param user_interest: e_u ``[num_categories]``; None uses the current user.
        """
        interest = self._interest_or_current(user_interest)
        return int(np.argmax(self._scores(interest)))

    def _scores(self, interest: np.ndarray) -> np.ndarray:
        # float32 like the catalogue: a float64 copy of 500k items would cost 120 MB per call
        return self._item_embeddings @ interest.astype(np.float32)

    def _interest_or_current(self, user_interest: np.ndarray | None) -> np.ndarray:
        if user_interest is None:
            return self._user_interest
        interest = np.asarray(user_interest, dtype=np.float64)
        if interest.shape != (self.num_categories,):
            raise ValueError(
                f"user_interest must have shape ({self.num_categories},), got {interest.shape}"
            )
        return interest

    # --- gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new user: e_u uniform in [−1, 1]ⁿ drawn from the env's generator (seeded by ``seed``).

        :param seed: seeds the user (initial interest, clicks, update directions); None continues
            the current generator.
        :param options: ``{"user_interest": e_u}`` starts from the given interest ``[num_categories]``
            in [−1, 1] instead of a random one (for tests and analysis).
        """
        super().reset(seed=seed)
        self._user_interest = self.np_random.uniform(-1.0, 1.0, size=self.num_categories)
        if options and "user_interest" in options:
            self._user_interest = self._validated_start_interest(options["user_interest"])
        self._elapsed_steps = 0
        self._needs_reset = False
        return self.user_interest, {}

    def _validated_start_interest(self, user_interest: object) -> np.ndarray:
        interest = self._interest_or_current(np.asarray(user_interest, dtype=np.float64)).copy()
        if not np.all(np.abs(interest) <= 1.0):
            raise ValueError(f"options['user_interest'] must lie in [-1, 1], got {user_interest!r}")
        return interest

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("RecSimEnv.step called before reset() or after the episode ended")
        item = self._validate_action(action)
        embedding = self._item_embeddings[item].astype(np.float64)
        score = float(self._user_interest @ embedding)
        p_click = float(click_probability(score, self.skip_score))
        clicked = bool(self.np_random.random() < p_click)
        if clicked:
            self._move_interest(embedding, score)
        self._elapsed_steps += 1
        truncated = self._elapsed_steps >= self.episode_length
        self._needs_reset = truncated
        info = {
            "clicked": clicked, "click_probability": p_click, "score": score,
            "item": item, "item_category": int(self._item_categories[item]),
        }
        return self.user_interest, float(clicked), False, truncated, info

    def _move_interest(self, embedding: np.ndarray, score: float) -> None:
        delta = interest_delta(self._user_interest, embedding, self.interest_step)
        p_toward = min(1.0, max(0.0, (1.0 + score) / 2.0))
        sign = 1.0 if self.np_random.random() < p_toward else -1.0
        self._user_interest = np.clip(self._user_interest + sign * delta, -1.0, 1.0)

    def _validate_action(self, action: object) -> int:
        array = np.asarray(action)
        if array.size != 1 or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"action must be one integer item index in [0, {self.num_items - 1}], got {action!r}"
            )
        item = int(array.reshape(()))
        if not 0 <= item < self.num_items:
            raise ValueError(f"action must be an item index in [0, {self.num_items - 1}], got {item}")
        return item


def make_recsim_env(seed: int | None = None, **kwargs: Any) -> RecSimEnv:
    """A :class:`RecSimEnv` built from ``kwargs``, its user and action sampler seeded if ``seed`` is given."""
    env = RecSimEnv(**kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_recsim_vector_envs(
    *,
    num_train_envs: int,
    num_test_envs: int,
    seed: int,
    vector_env: VectorEnvKind = "dummy",
    **env_kwargs: Any,
) -> tuple[BaseVectorEnv, BaseVectorEnv]:
    """Training and test vector envs of :class:`RecSimEnv` sharing one catalogue.

    Seeded as :func:`tianshou_qmle.env.dmc.make_seeded_vector_envs` does: training env ``i`` gets
    seed ``seed + i`` and test env ``j`` gets ``seed + 10_000 + j`` (these seed the users; the
    catalogue comes from ``catalogue_seed`` in ``env_kwargs``, default 0).

    :param vector_env: ``"dummy"`` (in-process) or ``"subproc"``.
    :param env_kwargs: :class:`RecSimEnv` arguments.
    :return: ``(train_envs, test_envs)``.
    """
    _, train_envs, test_envs = make_seeded_vector_envs(
        functools.partial(RecSimEnv, **env_kwargs), seed=seed, num_train_envs=num_train_envs,
        num_test_envs=num_test_envs, kind=vector_env,
    )
    return train_envs, test_envs
