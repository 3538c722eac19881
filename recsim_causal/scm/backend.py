"""Array backends of the World: every array operation of the SCM, in one place.

The mechanisms, the World and the environments compute through a ``Backend`` (``xp``): a
small object with the operations they need (creation, products, the link functions,
sampling, gathers), implemented once for numpy and once for torch (on CPU threads or a CUDA
device). Swapping the backend changes where and how the arrays are computed, never what is
computed: given the same exogenous noise, both give the same numbers (float64 to ~1e-15,
float32 to ~1e-6 relative; see ``tests/test_backend.py``).

    xp = get_backend("torch", device="cuda", dtype="float32")
    g = xp.generator(np.random.default_rng(0))   # a torch.Generator on the device, seeded from numpy
    x = xp.standard_normal(g, (4096, 8))         # (4096, 8) float32 on the device

Sampling is seeded by the caller's generator: numpy takes an ``np.random.Generator``; torch
takes a ``torch.Generator`` on its device, or an ``np.random.Generator`` from which it draws
one 63-bit seed per call (so an env seeded through Gymnasium is reproducible on any device).
The two backends draw different streams from the same seed: equality is "same noise in, same
outputs", not "same seed, same noise".
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np

from recsim_causal.config import check_integer
from recsim_causal.threads import single_threaded_blas, torch_threads

BACKENDS = ("numpy", "torch")


class NumpyBackend:
    """numpy arrays on the host (the default)."""

    name = "numpy"
    is_torch = False
    device = "cpu"

    def __init__(self, dtype: Any = "float64"):
        self.dtype = np.dtype(dtype)
        self.threads = None
        self.float32 = np.float32
        self.int64 = np.int64
        self.bool = np.bool_
        self._params: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def compute(self) -> contextlib.AbstractContextManager:
        """The context the world's array work runs in (numpy: BLAS threads are the runner's)."""
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"NumpyBackend(dtype={self.dtype.name})"

    # -- conversion ------------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> np.ndarray:
        """``x`` as an array of ``dtype`` (the backend's float dtype by default)."""
        return np.asarray(x, dtype=self.dtype if dtype is None else dtype)

    def param(self, x: np.ndarray) -> np.ndarray:
        """A fixed parameter (a numpy array that lives as long as its mechanism) in this
        backend's dtype, converted once and cached."""
        hit = self._params.get(id(x))
        if hit is None or hit[0] is not x:
            hit = self._params[id(x)] = (x, np.ascontiguousarray(x, dtype=self.dtype))
        return hit[1]

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def copy(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def astype(self, x: np.ndarray, dtype: Any = None) -> np.ndarray:
        """``x`` in ``dtype`` (the backend's float dtype by default), without a copy when it already is."""
        return x.astype(self.dtype if dtype is None else dtype, copy=False)

    # -- creation --------------------------------------------------------------------------
    def zeros(self, shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return np.zeros(shape, self.dtype if dtype is None else dtype)

    def ones(self, shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return np.ones(shape, self.dtype if dtype is None else dtype)

    def full(self, shape: Sequence[int], value: float, dtype: Any = None) -> np.ndarray:
        return np.full(shape, value, self.dtype if dtype is None else dtype)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n)

    def tile_rows(self, row: np.ndarray, n: int) -> np.ndarray:
        """(n, d) copies of a (d,) row."""
        return np.broadcast_to(self.param(row), (n, row.shape[0])).copy()

    # -- combination -----------------------------------------------------------------------
    def concat(self, arrays: Sequence[np.ndarray], axis: int = 1) -> np.ndarray:
        return np.concatenate(arrays, axis=axis)

    def stack(self, arrays: Sequence[np.ndarray], axis: int = 1) -> np.ndarray:
        return np.stack(arrays, axis=axis)

    def matmul_t(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b.T``: (n, m) x (K, m) -> (n, K); a large one on one BLAS thread (the factors are
        thin: two threads only spin), a small one directly (the thread limit costs more than it)."""
        if a.shape[0] * b.shape[0] < 1 << 16:
            return a @ b.T
        with single_threaded_blas():
            return a @ b.T

    def rowdot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise inner products: a (n, m) with b (n, m) -> (n,), or with b (n, L, m) -> (n, L)."""
        if b.ndim == 2:
            return np.einsum("ij,ij->i", a, b)
        return np.einsum("ij,ilj->il", a, b)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def cumprod(self, x: np.ndarray, axis: int = 1) -> np.ndarray:
        return np.cumprod(x, axis=axis)

    def take_along(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """x (n, K) at idx (n,) -> (n,), or at idx (n, L) -> (n, L)."""
        rows = np.arange(idx.shape[0])
        return x[rows, idx] if idx.ndim == 1 else x[rows[:, None], idx]

    def argmax(self, x: np.ndarray, axis: int = 1) -> np.ndarray:
        return x.argmax(axis=axis)

    def max(self, x: np.ndarray, axis: int = 1) -> np.ndarray:
        return x.max(axis=axis)

    def max_argmax(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's maximum and its index: (n, K) -> (n,), (n,)."""
        i = x.argmax(axis=1)
        return x[np.arange(x.shape[0]), i], i

    def topk(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k largest entries of each row, best first: (values (n, k), indices (n, k))."""
        if k == 1:
            idx = x.argmax(axis=1)[:, None]
        else:
            part = np.argpartition(-x, k - 1, axis=1)[:, :k] if k < x.shape[1] else np.tile(np.arange(x.shape[1]), (x.shape[0], 1))
            order = np.argsort(-np.take_along_axis(x, part, 1), axis=1, kind="stable")
            idx = np.take_along_axis(part, order, 1)
        return np.take_along_axis(x, idx, 1), idx

    def searchsorted(self, sorted_: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.searchsorted(sorted_, x, side="right")

    def one_hot(self, idx: np.ndarray, n_classes: int) -> np.ndarray:
        out = np.zeros((idx.shape[0], n_classes), self.dtype)
        out[np.arange(idx.shape[0]), idx] = 1
        return out

    # -- elementwise -----------------------------------------------------------------------
    def tanh(self, x):
        return np.tanh(x)

    def exp(self, x):
        return np.exp(x)

    def log(self, x):
        return np.log(x)

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        """sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, in place where possible (tanh is ~10x cheaper than exp)."""
        x = np.multiply(x, 0.5, out=x if (x.flags.writeable and x.dtype.kind == "f") else None)
        np.tanh(x, out=x)
        x *= 0.5
        x += 0.5
        return x

    # -- sampling --------------------------------------------------------------------------
    def generator(self, rng: Any) -> np.random.Generator:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: the numpy backend samples from a numpy.random.Generator, got {type(rng).__name__}")
        return rng

    def standard_normal(self, rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
        if self.dtype in (np.float32, np.float64):
            return rng.standard_normal(shape, dtype=self.dtype)
        return rng.standard_normal(shape).astype(self.dtype)

    def random(self, rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
        if self.dtype in (np.float32, np.float64):
            return rng.random(shape, dtype=self.dtype)
        return rng.random(shape).astype(self.dtype)

    # -- actions ---------------------------------------------------------------------------
    def as_index(self, x: Any) -> np.ndarray:
        """Item indices as int64 (validated by the caller)."""
        return np.asarray(x, dtype=np.int64)

    def min_max(self, x: np.ndarray) -> tuple[int, int]:
        return int(x.min()), int(x.max())

    def nonzero(self, mask: np.ndarray) -> np.ndarray:
        """Indices where a (n,) bool mask is True."""
        return np.flatnonzero(mask)

    def as_bool(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=bool)


class TorchBackend:
    """torch tensors on ``device`` (CPU threads or a CUDA device)."""

    name = "torch"
    is_torch = True

    def __init__(self, dtype: Any = "float64", device: Any = None, threads: int | None = 1):
        import torch

        self.torch = torch
        np_dtype = np.dtype(dtype)
        if np_dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {np_dtype.name!r}")
        self.np_dtype = np_dtype
        self.dtype = torch.float32 if np_dtype == np.float32 else torch.float64
        self.device = resolve_device(device)
        if threads is not None:
            check_integer(threads, "threads", 1)
        # On the CPU, torch's default (one intra-op thread per core) collapses when the cores are
        # busy: Bandit-v0 (N=4096, K=100) stepped 25x slower with two threads than with one on a
        # 2-core machine running another process (docs/failures.md). One thread unless told.
        self.threads = threads if self.device.type == "cpu" else None
        self.float32, self.int64, self.bool = torch.float32, torch.int64, torch.bool
        self._params: dict[int, tuple[np.ndarray, Any]] = {}
        # On the CPU, row argmax runs numpy's kernel on the tensors' memory (zero-copy, same
        # numbers): the world never tracks gradients, so .numpy() is safe.
        self._host = self.device.type == "cpu"

    def compute(self) -> contextlib.AbstractContextManager:
        """The context the world's array work runs in: ``threads`` intra-op threads on the CPU
        (restored after; None leaves torch's setting), nothing on a GPU."""
        return torch_threads(self.threads)

    def __repr__(self) -> str:
        return f"TorchBackend(dtype={self.np_dtype.name}, device={self.device})"

    # -- conversion ------------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(device=self.device, dtype=self.dtype if dtype is None else dtype)
        return t.as_tensor(np.asarray(x), dtype=self.dtype if dtype is None else dtype, device=self.device)

    def param(self, x: np.ndarray):
        hit = self._params.get(id(x))
        if hit is None or hit[0] is not x:
            hit = self._params[id(x)] = (x, self.asarray(np.ascontiguousarray(x)))
        return hit[1]

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self.torch.Tensor) else np.asarray(x)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.torch.Tensor)

    def copy(self, x):
        return x.clone()

    def astype(self, x, dtype: Any = None):
        return x.to(self.dtype if dtype is None else dtype)

    # -- creation --------------------------------------------------------------------------
    def zeros(self, shape, dtype=None):
        return self.torch.zeros(tuple(shape), dtype=self.dtype if dtype is None else dtype, device=self.device)

    def ones(self, shape, dtype=None):
        return self.torch.ones(tuple(shape), dtype=self.dtype if dtype is None else dtype, device=self.device)

    def full(self, shape, value, dtype=None):
        return self.torch.full(tuple(shape), float(value), dtype=self.dtype if dtype is None else dtype, device=self.device)

    def arange(self, n: int):
        return self.torch.arange(n, device=self.device)

    def tile_rows(self, row: np.ndarray, n: int):
        return self.param(row).expand(n, row.shape[0]).clone()

    # -- combination -----------------------------------------------------------------------
    def concat(self, arrays, axis: int = 1):
        return self.torch.cat(list(arrays), dim=axis)

    def stack(self, arrays, axis: int = 1):
        return self.torch.stack(list(arrays), dim=axis)

    def matmul_t(self, a, b):
        return a @ b.T

    def rowdot(self, a, b):
        if b.ndim == 2:
            return (a * b).sum(dim=1)
        return (a[:, None, :] * b).sum(dim=2)

    def where(self, cond, a, b):
        t = self.torch
        return t.where(cond, a if isinstance(a, t.Tensor) else t.as_tensor(a, device=self.device),
                       b if isinstance(b, t.Tensor) else t.as_tensor(b, device=self.device))

    def cumprod(self, x, axis: int = 1):
        return self.torch.cumprod(x, dim=axis)

    def take_along(self, x, idx):
        if idx.ndim == 1:
            return x.gather(1, idx[:, None])[:, 0]
        return x.gather(1, idx)

    def argmax(self, x, axis: int = 1):
        return x.max(dim=axis).indices

    def max(self, x, axis: int = 1):
        return x.amax(dim=axis)

    def max_argmax(self, x):
        """Each row's maximum and its (first) index. On the CPU, numpy's argmax on the same memory:
        torch's ``max(dim=1)`` with indices is ~4x slower there (1.07 vs 0.27 ms at 4096 x 100)."""
        if self._host:
            best, idx = NUMPY64.max_argmax(x.numpy())
            return self.torch.from_numpy(best), self.torch.from_numpy(idx)
        return x.max(dim=1)

    def topk(self, x, k: int):
        return self.torch.topk(x, k, dim=1, largest=True, sorted=True)

    def searchsorted(self, sorted_, x):
        return self.torch.searchsorted(sorted_, x, right=True)

    def one_hot(self, idx, n_classes: int):
        out = self.zeros((idx.shape[0], n_classes))
        out.scatter_(1, idx[:, None], 1.0)
        return out

    # -- elementwise -----------------------------------------------------------------------
    def tanh(self, x):
        return self.torch.tanh(x)

    def exp(self, x):
        return self.torch.exp(x)

    def log(self, x):
        return self.torch.log(x)

    def sigmoid(self, x):
        """In place when ``x`` is a fresh float tensor (as numpy's), else a new tensor."""
        if x.is_floating_point() and not x.requires_grad and x._base is None:
            return self.torch.sigmoid(x, out=x)
        return self.torch.sigmoid(x)

    # -- sampling --------------------------------------------------------------------------
    def generator(self, rng: Any):
        """A torch.Generator on the device: ``rng`` itself, or one seeded by a draw from a numpy generator."""
        t = self.torch
        if isinstance(rng, t.Generator):
            if t.device(rng.device).type != self.device.type:
                raise ValueError(f"rng: a torch.Generator on {rng.device} cannot sample on {self.device}")
            return rng
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator or a torch.Generator, got {type(rng).__name__}")
        g = t.Generator(device=self.device)
        g.manual_seed(int(rng.integers(2**63 - 1)))
        return g

    def standard_normal(self, rng, shape):
        return self.torch.randn(tuple(shape), generator=rng, dtype=self.dtype, device=self.device)

    def random(self, rng, shape):
        return self.torch.rand(tuple(shape), generator=rng, dtype=self.dtype, device=self.device)

    # -- actions ---------------------------------------------------------------------------
    def as_index(self, x: Any):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(device=self.device, dtype=t.int64)
        return t.as_tensor(np.array(x, dtype=np.int64), device=self.device)

    def min_max(self, x) -> tuple[int, int]:
        lo_hi = self.torch.aminmax(x)
        return int(lo_hi.min), int(lo_hi.max)

    def nonzero(self, mask):
        return self.torch.nonzero(self.as_bool(mask)).flatten()

    def as_bool(self, x):
        t = self.torch
        return x.to(device=self.device, dtype=t.bool) if isinstance(x, t.Tensor) else \
            t.as_tensor(np.asarray(x, dtype=bool), device=self.device)


def resolve_device(device: Any = None, *, where: str = "device"):
    """A torch.device from ``None``/``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda[:i]"``
    or a torch.device, with a one-line error when CUDA is asked for and absent."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{where}: expected 'auto', 'cpu' or 'cuda[:i]', got {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{where}: 'cuda' was asked for, but torch {torch.__version__} sees no CUDA device "
                         "(use 'cpu' or 'auto')")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{where}: expected 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return dev


NUMPY64 = NumpyBackend("float64")


def get_backend(backend: str = "numpy", device: Any = None, dtype: Any = "float64", threads: int | None = 1):
    """The array backend ``backend`` ("numpy" or "torch") computing in ``dtype`` on ``device``
    (torch only: "auto", "cpu", "cuda[:i]"; numpy takes None or "cpu"), with ``threads`` torch
    intra-op threads on the CPU (None: torch's own setting)."""
    if isinstance(backend, (NumpyBackend, TorchBackend)):
        return backend
    if backend == "numpy":
        if device not in (None, "cpu", "auto"):
            raise ValueError(f"device: the numpy backend computes on the CPU, got device={device!r} "
                             "(use backend='torch' for a GPU)")
        return NumpyBackend(dtype)
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("backend: 'torch' needs PyTorch (pip install torch)") from None
        return TorchBackend(dtype, device, threads)
    raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
