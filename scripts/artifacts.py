"""Readers for models trained elsewhere: a stable-baselines3 PPO zip, its VecNormalize pickle and a pickled
hmmlearn GaussianHMM. numpy only — no torch, no stable-baselines3, no hmmlearn, no code from the files runs
(safe_pickle.py). Every problem is an InputError naming the file, the problem and the fix.

What the files hold (stable-baselines3 2.x, `common/save_util.py` `save_to_zip_file`):
- the SB3 zip has a JSON member `data` (the algorithm's attributes; objects JSON cannot hold are stored
  as base64 cloudpickle under ":serialized:"), `policy.pth` (torch.save of the policy's state_dict: a zip
  whose `*/data.pkl` pickles tensors as `torch._utils._rebuild_tensor_v2` over storages kept raw in
  `*/data/<key>`, byte order in `*/byteorder`), `policy.optimizer.pth`, `pytorch_variables.pth`,
  `_stable_baselines3_version`;
- `data["_last_obs"]` is the observation the policy saw last in training, and `data["_last_original_obs"]`
  is set only when the training env was wrapped in VecNormalize (`common/base_class.py` `_setup_learn`:
  `if self._vec_normalize_env is not None: self._last_original_obs = ...get_original_obs()`); `save()`
  excludes `_vec_normalize_env` itself, so this is the one trace of the normalizer in the zip;
- VecNormalize.save pickles the wrapper without its venv (`common/vec_env/vec_normalize.py`
  `__getstate__`): `obs_rms` (RunningMeanStd: float64 `mean`, `var`, `count`), `epsilon`, `clip_obs`,
  `norm_obs`, `norm_reward`, `old_obs` (the last raw observation);
- an hmmlearn GaussianHMM pickles its attributes: `means_`, `_covars_` (stored shape per covariance_type),
  `startprob_`, `transmat_`, `n_components`, `covariance_type`.
"""

from __future__ import annotations

import base64
import binascii
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oracle_core import InputError
from safe_pickle import Stub, loads, qualname_of

# A member this large is no PPO MLP or HMM: refuse before reading it into memory.
MAX_MEMBER_BYTES = 256 * 1024 * 1024

# SB3's ActorCriticPolicy default activation is nn.Tanh (common/policies.py); torch.onnx exports these as:
ACTIVATIONS = {"torch.nn.modules.activation.Tanh": "Tanh", "torch.nn.modules.activation.ReLU": "Relu"}

_TORCH_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def read_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise InputError(f"{path}: {size} bytes is too large for a {what}")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (the {what}); check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected the {what} file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what}: {err}") from None


def open_zip(data: bytes, where: str, what: str, fix: str) -> zipfile.ZipFile:
    import io

    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as err:
        raise InputError(f"{where}: not a readable {what} (truncated or not a zip: {err}); {fix}") from None


def zip_member(zf: zipfile.ZipFile, name: str, where: str, fix: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise InputError(f"{where}: member `{name}` is missing; {fix}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"{where}: member `{name}` declares {info.file_size} bytes; too large for a model")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise InputError(f"{where}: member `{name}` is unreadable (truncated zip?): {err}; {fix}") from None


# ---------------------------------------------------------------------------------------------- torch


def read_state_dict(data: bytes, where: str) -> dict[str, np.ndarray]:
    """A torch.save'd state_dict (the zip format torch has written since 1.6) as numpy arrays."""
    fix = "save the model again with stable-baselines3's model.save()"
    zf = open_zip(data, where, "torch state_dict", fix)
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
    if len(pkl) != 1:
        raise InputError(f"{where}: not a torch.save file (no single */data.pkl member); {fix}")
    prefix = pkl[0][: -len("data.pkl")]
    order = "little"
    if f"{prefix}byteorder" in zf.namelist():
        order = zip_member(zf, f"{prefix}byteorder", where, fix).decode("ascii", "replace").strip()
    if order not in ("little", "big"):
        raise InputError(f"{where}: unknown torch byteorder {order!r}")
    storages: dict[str, np.ndarray] = {}

    def persistent_load(pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise InputError(f"{where}: unexpected torch persistent id {pid!r}; {fix}")
        _, kind, key, _location, numel = pid
        dtype = getattr(kind, "np_dtype", None)
        if dtype is None:
            raise InputError(f"{where}: tensor storage {qualname_of(kind) or kind!r} is not supported (float32/64 and ints are)")
        if key not in storages:
            raw = zip_member(zf, f"{prefix}data/{key}", where, fix)
            dt = np.dtype(dtype).newbyteorder("<" if order == "little" else ">")
            if len(raw) != int(numel) * dt.itemsize:
                raise InputError(f"{where}: tensor storage {key} has {len(raw)} bytes, expected {numel} x {dt.itemsize}; {fix}")
            storages[key] = np.frombuffer(raw, dtype=dt).astype(dtype)
        return storages[key]

    def rebuild_tensor(storage, offset, size, stride, *_rest):
        size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        need = int(offset) + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else int(offset)
        if need > storage.size:
            raise InputError(f"{where}: a tensor reaches past its storage; {fix}")
        view = np.lib.stride_tricks.as_strided(
            storage[int(offset):], shape=size, strides=tuple(s * storage.itemsize for s in stride)
        )
        return np.array(view)

    def rebuild_parameter(tensor, *_rest):
        return tensor

    extra: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    }
    for name, dtype in _TORCH_DTYPES.items():
        extra[("torch", name)] = type(name, (), {"np_dtype": dtype})
    state = loads(zip_member(zf, pkl[0], where, fix), where, extra, persistent_load)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise InputError(f"{where}: does not hold a state_dict of tensors; {fix}")
    return dict(state)


# ---------------------------------------------------------------------------------------------- SB3 policy


@dataclass(frozen=True)
class Sb3Policy:
    """The deterministic head of an SB3 ActorCriticPolicy with the default FlattenExtractor."""

    where: str
    obs_shape: tuple[int, ...]
    n_actions: int | None
    activation: str  # ONNX op: "Tanh" or "Relu"
    activation_class: str
    layers: list[tuple[np.ndarray, np.ndarray]]  # policy_net Linear layers, (weight [out,in], bias [out])
    action: tuple[np.ndarray, np.ndarray]  # action_net
    last_obs: np.ndarray | None  # [n_envs, D], what the policy saw last in training
    trained_with_vecnormalize: bool
    sb3_version: str

    @property
    def net_arch_pi(self) -> list[int]:
        return [int(w.shape[0]) for w, _ in self.layers]


def _serialized(data: dict, key: str, where: str) -> Any:
    """A `data` entry: plain JSON, or SB3's {":serialized:": base64 cloudpickle} for other objects."""
    value = data.get(key)
    if isinstance(value, dict) and ":serialized:" in value:
        try:
            blob = base64.b64decode(value[":serialized:"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise InputError(f"{where}: data entry `{key}` is not valid base64; the zip is damaged") from None
        return loads(blob, f"{where} (data entry `{key}`)")
    return value


def read_sb3_policy(data: bytes, where: str) -> Sb3Policy:
    fix = "pass the .zip written by stable-baselines3's model.save()"
    zf = open_zip(data, where, "stable-baselines3 model zip", fix)
    names = zf.namelist()
    if "data" not in names:
        # SB3 itself stops here with `assert data is not None, "No data found in the saved file"`.
        raise InputError(f"{where}: no `data` member, so not a stable-baselines3 model zip (SB3 says 'No data found "
                         f"in the saved file'); {fix}")
    if "policy.pth" not in names:
        raise InputError(f"{where}: no `policy.pth` member (the policy weights); {fix}")
    try:
        meta = json.loads(zip_member(zf, "data", where, fix).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{where}: member `data` is not JSON ({err}); {fix}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: member `data` is not a JSON object; {fix}")
    version = ""
    if "_stable_baselines3_version" in names:
        version = zip_member(zf, "_stable_baselines3_version", where, fix).decode("utf-8", "replace").strip()

    policy_class = _serialized(meta, "policy_class", where)
    if qualname_of(policy_class) != "stable_baselines3.common.policies.ActorCriticPolicy":
        raise InputError(f"{where}: policy class is {qualname_of(policy_class) or policy_class!r}; only SB3's "
                         "ActorCriticPolicy (\"MlpPolicy\") converts: retrain with policy=\"MlpPolicy\"")
    kwargs = _serialized(meta, "policy_kwargs", where) or {}
    if not isinstance(kwargs, dict):
        raise InputError(f"{where}: policy_kwargs is not a dict ({kwargs!r})")
    extractor = kwargs.get("features_extractor_class")
    if extractor is not None and qualname_of(extractor) != "stable_baselines3.common.torch_layers.FlattenExtractor":
        raise InputError(f"{where}: features extractor {qualname_of(extractor) or extractor!r} is not SB3's "
                         "FlattenExtractor; only the default MlpPolicy extractor converts")
    act = kwargs.get("activation_fn")
    act_name = qualname_of(act) if act is not None else "torch.nn.modules.activation.Tanh"
    if act_name not in ACTIVATIONS:
        raise InputError(f"{where}: activation_fn {act_name or act!r} is not supported; "
                         f"supported: {', '.join(a.rsplit('.', 1)[1] for a in ACTIVATIONS)} (retrain with one of them)")

    obs_space = _serialized(meta, "observation_space", where)
    if qualname_of(obs_space) != "gymnasium.spaces.box.Box":
        raise InputError(f"{where}: observation space is {qualname_of(obs_space) or obs_space!r}; expected a "
                         "gymnasium Box of 5 + n_states + 3 values (ENV.md §7)")
    obs_shape = tuple(int(x) for x in obs_space.__dict__.get("_shape", ()))
    act_space = _serialized(meta, "action_space", where)
    n_actions = None
    if qualname_of(act_space) == "gymnasium.spaces.discrete.Discrete":
        n_actions = int(act_space.__dict__["n"])
        if int(act_space.__dict__.get("start", 0)) != 0:
            raise InputError(f"{where}: action space Discrete(start={act_space.__dict__['start']}); the actions must be 0..6")

    state = read_state_dict(zip_member(zf, "policy.pth", where, fix), f"{where} (policy.pth)")
    layers = []
    i = 0
    while f"mlp_extractor.policy_net.{i}.weight" in state:
        layers.append((state[f"mlp_extractor.policy_net.{i}.weight"], state[f"mlp_extractor.policy_net.{i}.bias"]))
        i += 2  # Sequential(Linear, activation, Linear, activation, …)
    if "action_net.weight" not in state:
        raise InputError(f"{where}: policy.pth has no action_net (keys {sorted(state)[:6]}…); not an ActorCriticPolicy")
    known = {f"mlp_extractor.policy_net.{j}.{p}" for j in range(0, i, 2) for p in ("weight", "bias")}
    known |= {"action_net.weight", "action_net.bias"}
    unknown = [k for k in state if k not in known and not k.startswith(("mlp_extractor.value_net.", "value_net."))]
    if unknown:
        raise InputError(f"{where}: policy.pth holds parameters the MlpPolicy head does not have ({', '.join(unknown[:4])}); "
                         "a custom network cannot be converted")
    action = (state["action_net.weight"], state["action_net.bias"])
    width = obs_shape[0] if len(obs_shape) == 1 else None
    for j, (w, b) in enumerate(layers + [action]):
        if w.dtype != np.float32 or b.dtype != np.float32 or w.ndim != 2 or b.shape != (w.shape[0],):
            raise InputError(f"{where}: policy layer {j} is {w.dtype}{list(w.shape)} + {b.dtype}{list(b.shape)}; "
                             "expected float32 Linear layers")
        if width is not None and w.shape[1] != width:
            raise InputError(f"{where}: policy layer {j} takes {w.shape[1]} inputs, the previous gives {width}")
        width = w.shape[0]
    last_obs = _serialized(meta, "_last_obs", where)
    last_original = _serialized(meta, "_last_original_obs", where)
    return Sb3Policy(
        where=where,
        obs_shape=obs_shape,
        n_actions=n_actions,
        activation=ACTIVATIONS[act_name],
        activation_class=act_name.rsplit(".", 1)[1],
        layers=layers,
        action=action,
        last_obs=np.asarray(last_obs, dtype=np.float32) if isinstance(last_obs, np.ndarray) else None,
        trained_with_vecnormalize=last_original is not None,
        sb3_version=version,
    )


# ---------------------------------------------------------------------------------------------- VecNormalize


@dataclass(frozen=True)
class ObsNormalizer:
    """SB3 VecNormalize's observation statistics: obs' = clip((obs - mean) / sqrt(var + epsilon), ±clip_obs)."""

    where: str
    mean: np.ndarray  # float64 [D]
    var: np.ndarray  # float64 [D]
    epsilon: float
    clip_obs: float
    norm_obs: bool
    norm_reward: bool
    old_obs: np.ndarray | None  # the last raw observation it saw

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """SB3's `normalize_obs`, written as SB3 writes it (float64, then float32): the reference for tests."""
        if not self.norm_obs:
            return obs
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip_obs, self.clip_obs).astype(np.float32)


def read_vecnormalize(data: bytes, where: str) -> ObsNormalizer:
    fix = "pass the file written by stable-baselines3's VecNormalize.save()"
    obj = loads(data, where)
    if qualname_of(obj) != "stable_baselines3.common.vec_env.vec_normalize.VecNormalize":
        raise InputError(f"{where}: holds {qualname_of(obj) or type(obj).__name__}, not a VecNormalize; {fix}")
    d = obj.__dict__
    for key in ("epsilon", "clip_obs", "norm_obs", "norm_reward"):
        if key not in d:
            raise InputError(f"{where}: VecNormalize has no `{key}`; {fix}")
    rms = d.get("obs_rms")
    norm_obs = bool(d["norm_obs"])
    mean = var = np.zeros(0)
    if norm_obs:
        if isinstance(rms, dict):
            raise InputError(f"{where}: VecNormalize of a Dict observation space; the observation is one Box (ENV.md §7)")
        if qualname_of(rms) != "stable_baselines3.common.running_mean_std.RunningMeanStd":
            raise InputError(f"{where}: obs_rms is {qualname_of(rms) or rms!r}, not a RunningMeanStd; {fix}")
        mean = np.asarray(rms.__dict__.get("mean"), dtype=np.float64)
        var = np.asarray(rms.__dict__.get("var"), dtype=np.float64)
        if mean.ndim != 1 or var.shape != mean.shape:
            raise InputError(f"{where}: obs_rms mean/var shapes {mean.shape} / {var.shape}; expected one vector each")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
            raise InputError(f"{where}: obs_rms holds non-finite or negative values")
    eps, clip = float(d["epsilon"]), float(d["clip_obs"])
    if not (eps > 0 and np.isfinite(eps) and clip > 0 and np.isfinite(clip)):
        raise InputError(f"{where}: epsilon {eps} / clip_obs {clip} must be finite and > 0")
    old = d.get("old_obs")
    return ObsNormalizer(where, mean, var, eps, clip, norm_obs, bool(d["norm_reward"]),
                         np.asarray(old, dtype=np.float32) if isinstance(old, np.ndarray) else None)


# ---------------------------------------------------------------------------------------------- hmmlearn


@dataclass(frozen=True)
class GaussianHmm:
    """A fitted hmmlearn GaussianHMM's parameters, under hmmlearn's attribute names."""

    where: str
    n_components: int
    covariance_type: str
    means_: np.ndarray
    _covars_: np.ndarray
    startprob_: np.ndarray
    transmat_: np.ndarray


def hmm_from_object(obj: Any, where: str) -> GaussianHmm:
    """The parameters of a GaussianHMM (a Stub from a restricted unpickle, or a real hmmlearn object)."""
    name = qualname_of(obj) or f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name != "hmmlearn.hmm.GaussianHMM":
        raise InputError(f"{where}: holds {name}, not an hmmlearn GaussianHMM; pickle the fitted GaussianHMM itself")
    d = obj.__dict__
    missing = [k for k in ("means_", "_covars_", "startprob_", "transmat_") if k not in d]
    if missing:
        raise InputError(f"{where}: the GaussianHMM has no {', '.join(missing)}: it was never fitted; pickle it after .fit()")
    means = np.asarray(d["means_"], dtype=np.float64)
    if means.ndim != 2:
        raise InputError(f"{where}: means_ has shape {means.shape}; expected [n_states, 3]")
    k, n_feat = means.shape
    if n_feat != 3:
        raise InputError(f"{where}: the HMM has {n_feat} features; ENV.md §5 defines 3 (momentum, consistency, range): "
                         "refit it on those 3 scaled features")
    kind = d.get("covariance_type", "diag")
    covars = np.asarray(d["_covars_"], dtype=np.float64)
    shapes = {"full": [(k, 3, 3)], "diag": [(k, 3)], "spherical": [(k,), (k, 3)], "tied": [(3, 3)]}
    if kind not in shapes:
        raise InputError(f"{where}: covariance_type {kind!r}; hmmlearn's are full, diag, spherical, tied")
    if covars.shape not in shapes[kind]:
        raise InputError(f"{where}: '{kind}' covariances have shape {covars.shape}, expected {shapes[kind][0]}")
    start = np.asarray(d["startprob_"], dtype=np.float64)
    trans = np.asarray(d["transmat_"], dtype=np.float64)
    if start.shape != (k,) or trans.shape != (k, k):
        raise InputError(f"{where}: startprob_ {start.shape} / transmat_ {trans.shape} do not match {k} states")
    for arr, label in ((means, "means_"), (covars, "_covars_"), (start, "startprob_"), (trans, "transmat_")):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{where}: {label} holds non-finite values")
    return GaussianHmm(where, int(k), kind, means, covars, start, trans)


def read_gaussian_hmm(data: bytes, where: str) -> GaussianHmm:
    return hmm_from_object(loads(data, where), where)
