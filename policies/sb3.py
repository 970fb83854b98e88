"""Stable-Baselines3 agents (PPO, A2C, DQN) behind the policy protocol: wrapped, not subclassed.

:func:`train_sb3` trains a model on the environment; :class:`SB3Policy` serves it.

**Fast path.** Serving does not call ``model.predict``: at construction the policy network's
weights are exported to NumPy (as float64, so that a batch and a single row agree to ~1e-15
whatever BLAS kernel each uses) and a decision is a few small matrix products. The exported
network is the one ``predict`` evaluates: for PPO/A2C the actor MLP
(``mlp_extractor.policy_net``) and ``action_net``, giving the logits of the categorical
distribution; for DQN ``q_net``, giving Q-values. The action is their argmax, as in
``predict(deterministic=True)``. Where the best two logits (or Q-values) are closer than
``TIE_TOLERANCE`` (so float32 rounding in a different BLAS could swap them), that row is
recomputed with SB3's own torch modules under ``torch.inference_mode``, so the action always
equals SB3's. Probabilities agree with SB3's float32 ones to ~1e-7, which is also how much
SB3's own batch and single-row evaluations differ.

**Confidence.** PPO and A2C: the policy's probability of the chosen action. DQN: the chosen
action's share of ``softmax(Q / temperature)`` with ``temperature`` in reward units (default
1.0, one step's revenue at the starting size; see :class:`SB3Config`).

**Propensities.** With ``deterministic=True`` (the default, as ``predict`` serves) the action
is the argmax, so the honest propensities are a point mass on it, while the confidence still
reports the network's probability of that action. With ``deterministic=False`` PPO/A2C sample
from the distribution (keyed by the observation, see :func:`policies.base.observation_rng`)
and the propensities are the distribution. DQN is always greedy; its ``expected_values`` are
the Q-values.

**Files.** ``save`` writes SB3's own ``.zip`` with one extra entry, ``autopilot.json`` (the
algorithm and the serving settings), which SB3 ignores; any SB3 zip of a compatible model
loads. A loaded policy's version is the file's SHA-256 prefix. SB3 zips contain pickled
objects: load only files you trust.
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

import environment
from environment.actions import N_ACTIONS, paced_mask
from environment.kpis import N_OBS, decode_cycles_since
from environment.scenarios import SCENARIO_NAMES
from environment.wrappers import GuardedActions
from policies import storage
from policies.base import (
    ArrayPolicy,
    Decision,
    DecisionArrays,
    Obs,
    PolicyFileError,
    check_allowed,
    check_obs,
    observation_rng,
    one_hot,
    softmax,
)
from policies.calibration import Calibration
from policies.validation import check_names, check_number, check_range, config_error

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable_ppo": MaskablePPO,
}
"""Supported algorithms by registry name (``maskable_ppo``: sb3-contrib's ``MaskablePPO``)."""
ACTOR_CRITIC = frozenset({"ppo", "a2c", "maskable_ppo"})
MASKED = frozenset({"maskable_ppo"})
"""Algorithms trained on :class:`environment.wrappers.GuardedActions` and served masked: they
choose only among the actions the guardrails' pacing lets execute."""
TIE_TOLERANCE = 1e-4
"""Logit / Q gap below which a row is recomputed in torch to match SB3 bit for bit."""
META_ENTRY = "autopilot.json"
_POINT_MASS = np.eye(N_ACTIONS)
_POINT_MASS.flags.writeable = False  # shared by decisions: read-only


def _check_algo(algo: object) -> str:
    if not isinstance(algo, str) or algo.lower() not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {sorted(ALGORITHMS)}")
    return algo.lower()


@dataclass(frozen=True, slots=True)
class SB3Config:
    """How an SB3 model is served."""

    deterministic: bool = True
    """PPO/A2C: take the most probable action (as ``predict`` does) or sample from the
    distribution. DQN is always greedy."""
    temperature: float = 1.0
    """DQN confidence: ``softmax(Q / temperature)`` of the chosen action, in reward units."""
    seed: int = 0
    """Seed of the draws when ``deterministic`` is false."""
    approver: bool = False
    """Masked algorithms: whether an operator answers held decisions, so that actions that
    need a human (prices) may be chosen (:func:`environment.actions.paced_mask`). Training
    and serving read the same value."""

    def __post_init__(self) -> None:
        for name in ("deterministic", "approver"):
            if not isinstance(getattr(self, name), bool):
                raise config_error(self, name, getattr(self, name), "True or False")
        check_range(self, "temperature", 0.0, open_low=True)
        check_range(self, "seed", 0, integer=True)


# --- exporting the network ------------------------------------------------------------------

Layer = tuple[NDArray[np.float64], NDArray[np.float64], Callable[..., Any] | None]


def _relu(x: NDArray[np.float64], out: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.maximum(x, 0.0, out=out)


_ACTIVATIONS: dict[type[nn.Module], Callable[..., Any]] = {
    nn.Tanh: np.tanh,
    nn.ReLU: _relu,
}


def _export(modules: Sequence[nn.Module]) -> list[Layer]:
    """Linear layers (weights transposed) each with the activation that follows it."""
    layers: list[Layer] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().numpy().astype(np.float64).T.copy()
            bias = module.bias.detach().cpu().numpy().astype(np.float64).copy()
            layers.append((weight, bias, None))
        elif type(module) in _ACTIVATIONS and layers and layers[-1][2] is None:
            weight, bias, _ = layers[-1]
            layers[-1] = (weight, bias, _ACTIVATIONS[type(module)])
        elif isinstance(module, nn.Sequential | nn.Flatten | nn.Identity):
            continue
        else:
            raise ValueError(
                f"cannot export layer {type(module).__name__}: the fast path supports "
                "Linear layers with Tanh or ReLU activations (SB3's MlpPolicy)"
            )
    return layers


def _flat_modules(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [m for child in module for m in _flat_modules(child)]
    return [module]


def _forward(layers: list[Layer], obs: Obs) -> NDArray[np.float64]:
    h: NDArray[np.float64] = obs.astype(np.float64)
    for weight, bias, activation in layers:
        h = h @ weight
        h += bias
        if activation is not None:
            activation(h, out=h)
    return h


class SB3Policy(ArrayPolicy):
    """An SB3 model served through the NumPy fast path (see the module docstring).

    ``model``: a trained PPO, A2C or DQN with an ``MlpPolicy`` on this environment's spaces.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        config: SB3Config | None = None,
        version: str = "0",
        calibration: Calibration | None = None,
    ) -> None:
        algo = next((k for k, cls in ALGORITHMS.items() if isinstance(model, cls)), None)
        if algo is None:
            raise TypeError(
                f"SB3Policy wraps {sorted(ALGORITHMS)} models, got {type(model).__name__}"
            )
        obs_space, act_space = model.observation_space, model.action_space
        if not (
            isinstance(obs_space, gym.spaces.Box)
            and obs_space.shape == (N_OBS,)
            and isinstance(act_space, gym.spaces.Discrete)
            and int(act_space.n) == N_ACTIONS
        ):
            raise ValueError(
                f"model spaces {obs_space} / {act_space} do not match the environment's "
                f"Box({N_OBS},) / Discrete({N_ACTIONS})"
            )
        self.model = model
        self.algo = algo
        self.config = config or SB3Config()
        self.name = algo
        self.version = version
        self.calibration = calibration
        """Maps the network's confidence onto P(executing beats holding)
        (:mod:`policies.calibration`); ``None``: the raw confidence is served."""
        self._layers = self._export_network()

    def __deepcopy__(self, memo: dict[int, Any]) -> SB3Policy:
        """A served SB3 policy keeps no memory between decisions, so a copy (planners and
        counterfactual rollouts copy their continuation) shares the model: copying torch
        modules is slow and fails on tensors a training step left in the graph."""
        return copy.copy(self)

    def _export_network(self) -> list[Layer]:
        policy = self.model.policy
        if self.algo in ACTOR_CRITIC:
            policy = cast(ActorCriticPolicy, policy)  # MaskablePPO's policy has the same parts
            if not isinstance(policy.pi_features_extractor, FlattenExtractor):
                raise ValueError("the fast path needs SB3's default FlattenExtractor")
            modules = [
                *_flat_modules(policy.mlp_extractor.policy_net),
                *_flat_modules(policy.action_net),
            ]
        else:
            q_net = cast(Any, policy).q_net
            if not isinstance(q_net.features_extractor, FlattenExtractor):
                raise ValueError("the fast path needs SB3's default FlattenExtractor")
            modules = _flat_modules(q_net.q_net)
        return _export(modules)

    # --- deciding ---------------------------------------------------------------------------

    def scores(self, obs: Obs) -> NDArray[np.float64]:
        """Logits (PPO/A2C) or Q-values (DQN) by the fast path, float64 (n, N_ACTIONS).

        Rows whose best two scores are within ``TIE_TOLERANCE`` are recomputed by SB3's
        torch modules, so ``argmax`` equals ``model.predict(obs, deterministic=True)``.
        """
        out = _forward(self._layers, obs)
        top2 = np.sort(out, axis=1)[:, -2:]
        close = np.flatnonzero(top2[:, 1] - top2[:, 0] < TIE_TOLERANCE)
        if close.size:
            out[close] = self._torch_scores(obs[close])
        if self.algo in MASKED:
            out[~self.action_masks(obs)] = -np.inf
        return out

    def action_masks(self, obs: Obs) -> NDArray[np.bool_]:
        """bool (n, N_ACTIONS): the actions the pacing lets execute, read from each
        observation's recent-action entries (all True for an unmasked algorithm)."""
        if self.algo not in MASKED:
            return np.ones((len(obs), N_ACTIONS), dtype=bool)
        since = np.stack([decode_cycles_since(row) for row in obs])
        return paced_mask(since, approver=self.config.approver)

    def _torch_scores(self, obs: Obs) -> NDArray[np.float64]:
        policy = self.model.policy
        with torch.inference_mode():
            tensor = torch.as_tensor(obs, device=policy.device)
            if self.algo in ACTOR_CRITIC:
                distribution = cast(ActorCriticPolicy, policy).get_distribution(tensor)
                logits = cast(Any, distribution).distribution.logits
            else:
                logits = cast(Any, policy).q_net(tensor)
            return np.asarray(logits.cpu().numpy(), dtype=np.float64)

    def action_probabilities(self, obs: Obs) -> NDArray[np.float64]:
        """PPO/A2C: the policy's action distribution, float64 (n, N_ACTIONS)."""
        if self.algo not in ACTOR_CRITIC:
            raise ValueError(f"{self.algo} has no action distribution; use scores()")
        return softmax(self.scores(obs))

    def decide(self, obs: Obs) -> Decision:
        """Decide for one observation, float32 shape (N_OBS,).

        The serving path: for deterministic PPO/A2C it skips the batch machinery (same result
        as ``decide_batch(obs[None])[0]``, tested).
        """
        if self.algo not in ACTOR_CRITIC or not self.config.deterministic:
            return super().decide(obs)
        scores = self.scores(check_obs(obs)[None, :])[0]
        action = int(scores.argmax())
        # p(argmax) = 1 / sum_j exp(s_j - s_max): the softmax's value at the chosen action
        confidence = 1.0 / float(np.exp(scores - scores[action]).sum())
        if self.calibration is not None:
            confidence = float(
                self.calibration.apply(np.array([action]), np.array([confidence]))[0]
            )
        return Decision(action, confidence, _POINT_MASS[action], self.name, self.version)

    def decide_allowed(self, obs: Obs, allowed: NDArray[np.bool_]) -> Decision:
        """``decide`` among ``allowed`` (:class:`policies.base.MaskAware`): the refused
        actions' scores become ``-inf`` before the choice, so the decision is the best
        allowed action by the same network, and its confidence and propensities are those of
        the restricted distribution (calibrated as ``decide``'s are)."""
        mask = check_allowed(allowed)
        arrays = self._decide_arrays(check_obs(obs)[None, :], allowed=mask[None, :])
        return self._decision(arrays, 0)

    def _decide_arrays(self, obs: Obs, allowed: NDArray[np.bool_] | None = None) -> DecisionArrays:
        scores = self.scores(obs)
        if allowed is not None:
            scores[~allowed] = -np.inf
        rows = np.arange(len(obs))
        if self.algo not in ACTOR_CRITIC:
            actions = scores.argmax(axis=1).astype(np.int64)
            q = scores
            confidences = softmax(q, self.config.temperature)[rows, actions]
            return DecisionArrays(
                actions, self._calibrated(actions, confidences), one_hot(actions), q
            )
        probabilities = softmax(scores)
        if self.config.deterministic:
            actions = scores.argmax(axis=1).astype(np.int64)
            propensities = one_hot(actions)
        else:
            actions = np.array(
                [
                    observation_rng(self.config.seed, 0, row).choice(N_ACTIONS, p=p)
                    for row, p in zip(obs, probabilities, strict=True)
                ],
                dtype=np.int64,
            )
            propensities = probabilities
        return DecisionArrays(
            actions, self._calibrated(actions, probabilities[rows, actions]), propensities
        )

    def _calibrated(
        self, actions: NDArray[np.int64], confidences: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        if self.calibration is None:
            return confidences
        return self.calibration.apply(actions, confidences)

    # --- files ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """SB3's zip plus ``autopilot.json``; the policy's version becomes the file digest."""
        file = Path(path)
        if file.suffix != ".zip":
            file = file.with_name(file.name + ".zip")
        file.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(file)
        meta: dict[str, Any] = {
            "kind": self.algo,
            "format": storage.FORMAT,
            "config": asdict(self.config),
        }
        if self.calibration is not None:
            meta["calibration"] = self.calibration.to_dict()
        with zipfile.ZipFile(file, "a") as archive:
            archive.writestr(META_ENTRY, json.dumps(meta, sort_keys=True))
        self.version = storage.file_digest(file)
        return file

    @classmethod
    def load(cls, path: str | Path, algo: str | None = None) -> SB3Policy:
        """Load an SB3 zip. ``algo`` (ppo, a2c, dqn) is read from ``autopilot.json`` when the
        file has one; it must then agree with the file, and is required otherwise."""
        file = Path(path)
        if not file.exists():
            raise FileNotFoundError(f"SB3 model file {str(file)!r} does not exist")
        if not file.is_file():
            raise PolicyFileError(f"SB3 model path {str(file)!r} is not a file")
        requested = None if algo is None else _check_algo(algo)
        config = SB3Config()
        try:
            with zipfile.ZipFile(file) as archive:
                stored = (
                    json.loads(archive.read(META_ENTRY)) if META_ENTRY in archive.namelist() else {}
                )
        except (zipfile.BadZipFile, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise PolicyFileError(
                f"SB3 model file {str(file)!r} is corrupt or not a zip archive: {error}"
            ) from None
        kind = stored.get("kind")
        if kind is not None and requested is not None and kind != requested:
            raise PolicyFileError(f"model file {str(file)!r} holds a {kind!r} model, not {algo!r}")
        chosen = requested or kind
        if chosen is None:
            raise ValueError(
                f"model file {str(file)!r} does not say its algorithm; pass algo= one of "
                f"{sorted(ALGORITHMS)}"
            )
        if "config" in stored:
            known = {f.name for f in fields(SB3Config)}
            config = SB3Config(**{k: v for k, v in stored["config"].items() if k in known})
        try:
            model = ALGORITHMS[_check_algo(chosen)].load(file, device="cpu")
        except Exception as error:  # SB3 raises many types for a bad archive
            raise PolicyFileError(
                f"{chosen} model file {str(file)!r} cannot be loaded: "
                f"{type(error).__name__}: {error}"
            ) from None
        calibration = None
        if "calibration" in stored:
            try:
                calibration = Calibration.from_dict(stored["calibration"])
            except ValueError as error:
                raise PolicyFileError(f"model file {str(file)!r}: {error}") from None
        return cls(model, config, version=storage.file_digest(file), calibration=calibration)


# --- training -------------------------------------------------------------------------------


def make_training_env(
    scenario: str | Sequence[str],
    n_envs: int,
    seed: int,
    reward_scale: float,
    params: dict[str, Any] | None = None,
    *,
    guarded: bool = False,
    approver: bool = False,
) -> DummyVecEnv:
    """``n_envs`` monitored copies of the environment; copy ``i`` runs scenario
    ``scenarios[i % len]`` (a name may repeat, to weigh it). Rewards are multiplied by
    ``reward_scale`` for training only (it keeps value targets near 1, so value gradients do
    not crowd out the policy's under a shared gradient-norm clip); serving never sees it.
    ``guarded``: each copy refuses what the live guardrails' pacing refuses
    (:class:`environment.wrappers.GuardedActions`, with ``approver``)."""
    names = check_names(scenario, SCENARIO_NAMES, "scenarios", distinct=False)
    check_number("n_envs", n_envs, 1, integer=True)
    check_number("seed", seed, 0, integer=True)
    check_number("reward_scale", reward_scale, 0.0, open_low=True)

    def factory(index: int) -> Callable[[], gym.Env[Any, Any]]:
        def build() -> gym.Env[Any, Any]:
            env = environment.make_env(names[index % len(names)], params=params)
            if guarded:
                env = GuardedActions(env, approver=approver)
            env = Monitor(env)
            return gym.wrappers.TransformReward(env, lambda r: reward_scale * float(r))

        return build

    vec = DummyVecEnv([factory(i) for i in range(n_envs)])
    vec.seed(seed)
    return vec


@dataclass(frozen=True, slots=True)
class Demonstrations:
    """A teacher's episodes in the guarded environment: float32 obs (n, N_OBS), the executed
    actions int64 (n,), their masks bool (n, N_ACTIONS) and discounted returns float64 (n,)
    (already multiplied by the training ``reward_scale``)."""

    obs: NDArray[np.float32]
    actions: NDArray[np.int64]
    masks: NDArray[np.bool_]
    returns: NDArray[np.float64]


def demonstrate(
    teacher: Any,
    scenarios: Sequence[str],
    seeds: Sequence[int],
    *,
    gamma: float,
    reward_scale: float,
    approver: bool = False,
    params: dict[str, Any] | None = None,
) -> Demonstrations:
    """Run ``teacher`` (a policy with ``decide``) for one episode per scenario and seed in
    :class:`~environment.wrappers.GuardedActions`; a refused choice is recorded as the
    ``noop`` that ran, so the demonstrations only hold what executes."""
    obs_rows: list[NDArray[np.float32]] = []
    actions: list[int] = []
    masks: list[NDArray[np.bool_]] = []
    returns: list[float] = []
    for scenario in check_names(scenarios, SCENARIO_NAMES, "scenarios", distinct=False):
        for seed in seeds:
            env = GuardedActions(environment.make_env(scenario, params=params), approver=approver)
            obs, _ = env.reset(seed=int(seed))
            if hasattr(teacher, "reset"):
                teacher.reset()
            rewards: list[float] = []
            done = False
            while not done:
                mask = env.action_masks()
                action = int(teacher.decide(obs).action)
                executed = action if mask[action] else 0
                obs_rows.append(obs)
                actions.append(executed)
                masks.append(mask)
                obs, reward, terminated, truncated, _ = env.step(executed)
                rewards.append(reward_scale * float(reward))
                done = terminated or truncated
            discounted, tail = [], 0.0
            for reward in reversed(rewards):
                tail = reward + gamma * tail
                discounted.append(tail)
            returns.extend(reversed(discounted))
            env.close()
    return Demonstrations(
        np.asarray(obs_rows, dtype=np.float32),
        np.asarray(actions, dtype=np.int64),
        np.asarray(masks, dtype=bool),
        np.asarray(returns, dtype=np.float64),
    )


def imitate(
    model: BaseAlgorithm,
    demonstrations: Demonstrations,
    *,
    epochs: int,
    learning_rate: float = 1e-3,
    batch_size: int = 256,
) -> dict[str, float]:
    """Behaviour cloning before reinforcement learning: fit the actor to the demonstrations'
    actions (cross-entropy over the masked logits, each action weighted by ``1 / sqrt(its
    frequency)``, so the rare repairs that matter are not drowned by ``noop``) and the critic to
    their discounted returns (squared error), with the model's own optimizer at
    ``learning_rate``. Returns the last epoch's mean losses (``imitation/policy_loss``,
    ``imitation/value_loss``, ``imitation/accuracy``)."""
    check_number("epochs", epochs, 1, integer=True)
    check_number("learning_rate", learning_rate, 0.0, open_low=True)
    policy: Any = model.policy
    counts = np.bincount(demonstrations.actions, minlength=N_ACTIONS).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    weights *= len(demonstrations.actions) / (weights[demonstrations.actions].sum())
    sample_weights = torch.as_tensor(weights[demonstrations.actions], dtype=torch.float32)
    rates = [group["lr"] for group in policy.optimizer.param_groups]
    for group in policy.optimizer.param_groups:
        group["lr"] = learning_rate
    n = len(demonstrations.actions)
    generator = np.random.default_rng(0)
    obs = torch.as_tensor(demonstrations.obs)
    actions = torch.as_tensor(demonstrations.actions)
    returns = torch.as_tensor(demonstrations.returns, dtype=torch.float32)
    masks = demonstrations.masks
    metrics: dict[str, float] = {}
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = generator.permutation(n)
        totals = np.zeros(3)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            kwargs = {"action_masks": masks[rows]} if isinstance(model, MaskablePPO) else {}
            distribution = policy.get_distribution(obs[rows], **kwargs)
            policy_loss = -(distribution.log_prob(actions[rows]) * sample_weights[rows]).mean()
            value_loss = nn.functional.mse_loss(
                policy.predict_values(obs[rows]).flatten(), returns[rows]
            )
            loss = policy_loss + 0.5 * value_loss
            policy.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            policy.optimizer.step()
            with torch.no_grad():
                chosen = distribution.distribution.probs.argmax(dim=1)
                accuracy = (chosen == actions[rows]).float().mean()
            totals += len(rows) * np.array(
                [float(policy_loss.detach()), float(value_loss.detach()), float(accuracy)]
            )
        metrics = dict(
            zip(
                ("imitation/policy_loss", "imitation/value_loss", "imitation/accuracy"),
                (totals / n).tolist(),
                strict=True,
            )
        )
    policy.set_training_mode(False)
    for group, rate in zip(policy.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    return metrics


def train_sb3(
    algo: str,
    scenario: str | Sequence[str],
    timesteps: int,
    seed: int,
    *,
    n_envs: int,
    reward_scale: float,
    config: SB3Config | None = None,
    params: dict[str, Any] | None = None,
    callback: BaseCallback | None = None,
    logger: Logger | None = None,
    verbose: int = 0,
    demonstrations: Demonstrations | None = None,
    imitation_epochs: int = 0,
    imitation_learning_rate: float = 1e-3,
    **hyperparams: Any,
) -> SB3Policy:
    """Train ``algo`` (ppo, a2c, dqn, maskable_ppo) with an ``MlpPolicy`` for ``timesteps``
    environment steps; with ``demonstrations`` and ``imitation_epochs`` > 0, the model first
    imitates them (:func:`imitate`), then reinforcement learning starts from there.

    scenario: one name or a list (spread over the ``n_envs`` copies, see
    :func:`make_training_env`); hyperparams: keyword arguments of the SB3 algorithm, passed as
    given (what is not given is stable-baselines3's own default). This wrapper holds no
    hyperparameter values of its own: the project's are ``experiments/configs/<algo>.yaml``,
    which ``autopilot train`` reads. ``callback`` and ``logger`` go to SB3's ``learn`` and
    ``set_logger``. Returns the served policy (version ``"0"`` until saved).
    """
    name = _check_algo(algo)
    check_number("timesteps", timesteps, 1, integer=True)
    config = config or SB3Config()
    masked = name in MASKED
    vec = make_training_env(
        scenario, n_envs, seed, reward_scale, params, guarded=masked, approver=config.approver
    )
    try:
        try:
            model = ALGORITHMS[name](
                "MlpPolicy", vec, seed=seed, device="cpu", verbose=verbose, **hyperparams
            )
        except TypeError as error:
            raise ValueError(f"bad hyperparameters for {name}: {error}") from None
        if logger is not None:
            model.set_logger(logger)
        if demonstrations is not None and imitation_epochs > 0:
            metrics = imitate(
                model,
                demonstrations,
                epochs=imitation_epochs,
                learning_rate=imitation_learning_rate,
            )
            if logger is not None:
                for key, value in metrics.items():
                    logger.record(key, value)
        model.learn(total_timesteps=timesteps, callback=callback)
    finally:
        vec.close()
    return SB3Policy(model, config)
