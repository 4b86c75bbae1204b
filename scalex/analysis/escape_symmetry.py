"""The S_K × S_M structure of the symmetric plateau (docs/theory.md §5.1–§5.2), for `escape`.

Two tools, both exact:

* `Irrep`: the decomposition of one group's packed state x_τ (upper triangle of q^τ, then r^τ;
  p = K(K+1)/2 + KM numbers) into the irreducible representations of S_K × S_M. With P_K the
  centring of student indices and P_M that of teacher indices, the state splits into

  ========  ===================  ==================  ==============================
  name      representation       dimension d         copies (m) in x_τ
  ========  ===================  ==================  ==============================
  triv      trivial (V0)         1                   diag q, off-diag q, r
  std_K     standard of S_K      K − 1               diag q, off-diag q (K ≥ 3), r
  pair      (K−2, 2) of S_K      K(K − 3)/2          off-diag q
  std_M     standard of S_M      M − 1               r
  std_KM    std_K ⊗ std_M        (K − 1)(M − 1)      r (double centring P_K r P_M)
  ========  ===================  ==================  ==============================

  Each copy c comes with an isometric intertwiner T_c from an "ambient" space of the
  representation (R^K for std_K, R^{K×M} for std_KM, ...) into the packed coordinates. At a
  symmetric state the Jacobian commutes with S_K × S_M, so by Schur's lemma it acts on the
  copies of one representation as an m × m matrix, the same for every vector of the ambient
  space: J (T_c u) = Σ_c' M_c'c T_c' u. `Irrep.analysis` gives the coefficients (…, m, d') of
  a packed state, `Irrep.synthesis` the packed state of coefficients, and
  `Irrep.representatives` the m packed vectors T_c e for one fixed unit e, from which M is read.
  V1 (the symmetry-breaking subspace) is the sum of all but ``triv``.

* `UnitClasses`: the field moments s, E (docs/theory.md §3.3–§3.4) and ε_g of a covariance whose
  units fall into classes of exchangeable units (identical second-layer weights, and C invariant
  under permutations within each class), from a representative subsystem of at most four units
  per student class and two per teacher class, with the sums over units weighted by their class
  sizes. The cost does not grow with K and M. `escape` uses it at symmetric states and along the
  representative vectors above, which move at most students 1–4 and teachers 1–2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from scalex.engines.ode_system import field_moments
from scalex.model.integrals import I2, I3, I4, J2, coefficients

__all__ = ["IRREP_NAMES", "Irrep", "UnitClasses", "irreps"]

Array = NDArray[np.float64]

#: Up to this many units (K + M) `UnitClasses` evaluates the whole system with the compiled
#: kernel of `scalex.engines.ode_system`.
DIRECT_UNITS = 16

#: Order of the representations in `irreps` (``triv`` first: V0).
IRREP_NAMES = ("triv", "std_K", "pair", "std_M", "std_KM")


# --------------------------------------------------------------------------- irreps
@dataclass
class Irrep:
    """One irreducible representation of S_K × S_M in the packed per-group state (module doc).

    ``copies`` names the copies (``"diag"``, ``"off"``, ``"r"``); ``dim`` is d, ``ambient`` the
    length d' of the coefficient vectors (d' ≥ d: they lie in a d-dimensional subspace).
    """

    name: str
    K: int
    M: int
    copies: tuple[str, ...]
    dim: int
    ambient: int
    iu: tuple[NDArray[np.intp], NDArray[np.intp]] = field(repr=False)
    _reps: Array | None = field(default=None, repr=False, compare=False)

    @property
    def m(self) -> int:
        """Number of copies (multiplicity in one group)."""
        return len(self.copies)

    # -- packing helpers
    def _split(self, x: Array) -> tuple[Array, Array, Array]:
        """Packed (…, p) → diag q (…, K), off-diagonal q packed (…, K(K−1)/2), r (…, K, M)."""
        K, M = self.K, self.M
        nq = len(self.iu[0])
        on = self.iu[0] == self.iu[1]
        return x[..., :nq][..., on], x[..., :nq][..., ~on], x[..., nq:].reshape(
            *x.shape[:-1], K, M)

    def _join(self, diag: Array, off: Array, r: Array) -> Array:
        K, M = self.K, self.M
        lead = r.shape[:-2]
        on = self.iu[0] == self.iu[1]
        q = np.zeros((*lead, len(self.iu[0])))
        q[..., on] = diag
        q[..., ~on] = off
        return np.concatenate([q, r.reshape(*lead, K * M)], axis=-1)

    def _rowsums(self, off: Array) -> Array:
        """Row sums Σ_{j≠i} O_ij of the symmetric zero-diagonal matrix packed in ``off``."""
        i, j = self.iu[0][self.iu[0] != self.iu[1]], self.iu[1][self.iu[0] != self.iu[1]]
        out = np.zeros((*off.shape[:-1], self.K))
        np.add.at(np.moveaxis(out, -1, 0), i, np.moveaxis(off, -1, 0))
        np.add.at(np.moveaxis(out, -1, 0), j, np.moveaxis(off, -1, 0))
        return out

    def _pairs(self, u: Array) -> Array:
        """(u_i + u_j) for the packed off-diagonal pairs i < j."""
        off = self.iu[0] != self.iu[1]
        return u[..., self.iu[0][off]] + u[..., self.iu[1][off]]

    # -- the intertwiners
    def analysis(self, x: Array) -> Array:
        """Coefficients (…, m, d') of packed states x (…, p): T_cᵀ x for every copy c."""
        x = np.asarray(x, dtype=float)
        diag, off, r = self._split(x)
        K, M = self.K, self.M
        out = []
        for copy in self.copies:
            if self.name == "triv":
                part = {"diag": diag, "off": off, "r": r.reshape(*r.shape[:-2], -1)}[copy]
                out.append(part.sum(-1, keepdims=True) / np.sqrt(part.shape[-1]))
            elif self.name == "std_K":
                if copy == "diag":
                    u = diag
                elif copy == "off":
                    u = self._rowsums(off) / np.sqrt(K - 2)
                else:
                    u = r.sum(-1) / np.sqrt(M)
                out.append(u - u.mean(-1, keepdims=True))
            elif self.name == "pair":
                rows = self._rowsums(off)
                rows = rows - rows.mean(-1, keepdims=True)
                out.append(off - off.mean(-1, keepdims=True) - self._pairs(rows) / (K - 2))
            elif self.name == "std_M":
                u = r.sum(-2) / np.sqrt(K)
                out.append(u - u.mean(-1, keepdims=True))
            else:  # std_KM: double centring
                c = r - r.mean(-1, keepdims=True)
                out.append((c - c.mean(-2, keepdims=True)).reshape(*r.shape[:-2], K * M))
        return np.stack(out, axis=-2)

    def synthesis(self, z: Array) -> Array:
        """Packed states (…, p) of coefficients z (…, m, d'): Σ_c T_c z_c."""
        z = np.asarray(z, dtype=float)
        K, M = self.K, self.M
        lead = z.shape[:-2]
        diag = np.zeros((*lead, K))
        off = np.zeros((*lead, K * (K - 1) // 2))
        r = np.zeros((*lead, K, M))
        for k, copy in enumerate(self.copies):
            u = z[..., k, :]
            if self.name == "triv":
                if copy == "diag":
                    diag = diag + u / np.sqrt(K)
                elif copy == "off":
                    off = off + u / np.sqrt(off.shape[-1])
                else:
                    r = r + u[..., None] / np.sqrt(K * M)
            elif self.name == "std_K":
                if copy == "diag":
                    diag = diag + u
                elif copy == "off":
                    off = off + self._pairs(u) / np.sqrt(K - 2)
                else:
                    r = r + u[..., :, None] / np.sqrt(M)
            elif self.name == "pair":
                off = off + u
            elif self.name == "std_M":
                r = r + u[..., None, :] / np.sqrt(K)
            else:
                r = r + u.reshape(*lead, K, M)
        return self._join(diag, off, r)

    def unit(self) -> Array:
        """The fixed unit vector e (d') of the ambient space used by `representatives`."""
        M = self.M
        e = np.zeros(self.ambient)
        if self.name == "triv":
            e[0] = 1.0
        elif self.name == "std_K":
            e[[0, 1]] = 1.0, -1.0
        elif self.name == "std_M":
            e[[0, 1]] = 1.0, -1.0
        elif self.name == "std_KM":
            e[[0, 1, M, M + 1]] = 1.0, -1.0, -1.0, 1.0
        else:  # pair: O_01 = O_23 = 1, O_02 = O_13 = −1
            off = [(a, b) for a, b in zip(*self.iu, strict=True) if a != b]
            for (a, b), val in (((0, 1), 1.0), ((2, 3), 1.0), ((0, 2), -1.0), ((1, 3), -1.0)):
                e[off.index((a, b))] = val
        return e / np.linalg.norm(e)

    def representatives(self) -> Array:
        """(m, p): the packed vectors T_c e, one per copy (orthonormal). The coefficient of
        a packed state x along them, analysis(x)_c · e, is x · T_c e."""
        if self._reps is None:
            z = np.zeros((self.m, self.m, self.ambient))
            z[np.arange(self.m), np.arange(self.m)] = self.unit()
            self._reps = self.synthesis(z)
        return self._reps


def irreps(K: int, M: int) -> list[Irrep]:
    """The representations present in one group's state, in the order of `IRREP_NAMES`;
    their m·d add up to p = K(K+1)/2 + KM."""
    iu = np.triu_indices(K)
    out = [Irrep("triv", K, M, ("diag", "off", "r") if K >= 2 else ("diag", "r"), 1, 1, iu)]
    if K >= 2:
        copies = ("diag", "off", "r") if K >= 3 else ("diag", "r")
        out.append(Irrep("std_K", K, M, copies, K - 1, K, iu))
    if K >= 4:
        out.append(Irrep("pair", K, M, ("off",), K * (K - 3) // 2, K * (K - 1) // 2, iu))
    if M >= 2:
        out.append(Irrep("std_M", K, M, ("r",), M - 1, M, iu))
    if K >= 2 and M >= 2:
        out.append(Irrep("std_KM", K, M, ("r",), (K - 1) * (M - 1), K * M, iu))
    p = K * (K + 1) // 2 + K * M
    if sum(ir.m * ir.dim for ir in out) != p:  # pragma: no cover - a bookkeeping error
        raise AssertionError("irreps: dimensions do not add up to p")
    return out


# --------------------------------------------------------------------------- classes of units
class UnitClasses:
    """Moments of a covariance with classes of exchangeable units (module docstring).

    The students 0..K−1 are split into the singletons ``student_singletons`` and the rest; the
    teachers likewise. A class of n units is represented by its first min(n, 4) (students) or
    min(n, 2) (teachers) members. The caller guarantees that C is invariant under permutations
    inside every class and that v (w) is constant on every class.
    """

    def __init__(self, K: int, M: int, student_singletons: Sequence[int] = (),
                 teacher_singletons: Sequence[int] = ()) -> None:
        self.K, self.M = K, M
        classes: list[NDArray[np.intp]] = []
        for units, singles, offset in ((K, student_singletons, 0), (M, teacher_singletons, K)):
            singles = [s for s in singles if s < units]
            classes += [np.array([offset + s]) for s in singles]
            rest = np.array([offset + u for u in range(units) if u not in singles], dtype=np.intp)
            if rest.size:
                classes.append(rest)
        self.classes = classes
        size = np.array([len(c) for c in classes])
        student = np.array([c[0] < K for c in classes])
        reps = [c[: (4 if s else 2)] for c, s in zip(classes, student, strict=True)]
        self.index = np.concatenate(reps)  # small-system unit → big unit
        self.n_small = len(self.index)
        self.K_small = int(sum(len(r) for r, s in zip(reps, student, strict=True) if s))
        #: use the compiled kernel on the whole system: the subsystem is not smaller, or the
        #: system is small enough for the kernel to beat the weighted numpy sums
        self.trivial = self.n_small == K + M or K + M <= DIRECT_UNITS
        cls_of = np.concatenate([np.full(len(r), k) for k, r in enumerate(reps)])
        first = {}
        for a, k in enumerate(cls_of):
            first.setdefault(int(k), []).append(a)
        n, Ks = self.n_small, self.K_small
        # ω1[i, c]: weight of unit c in Σ_c (…) for student i (pinned unit: i)
        # ω2[i, j, c, d]: weight of the pair (c, d) in Σ_{c,d} (…) for students i, j
        w1 = np.zeros((Ks, n))
        w2 = np.zeros((Ks, Ks, n, n))
        for i in range(Ks):
            w1[i] = self._single_weights({i}, cls_of, first, size)
            for j in range(Ks):
                w2[i, j] = self._pair_weights({i, j}, cls_of, first, size)
        self.w1, self.w2 = w1, w2
        # pair weights of a quadratic form Σ_{a,b} (no pinned units), for ε_g
        self.wq = self._pair_weights(set(), cls_of, first, size)
        # expansion small → big: for big (I, A) the small (i, a)
        big_cls = np.empty(K + M, dtype=np.intp)
        for k, c in enumerate(classes):
            big_cls[c] = k
        rep0 = np.array([first[int(k)][0] for k in big_cls])
        rep1 = np.array([first[int(k)][min(1, len(first[int(k)]) - 1)] for k in big_cls])
        same = big_cls[:, None] == big_cls[None, :]
        eye = np.eye(K + M, dtype=bool)
        self._rows = np.broadcast_to(rep0[:, None], (K + M, K + M))
        self._cols = np.where(same & ~eye, rep1[None, :], rep0[None, :])

    @staticmethod
    def _free(pinned: set[int], cls_of: NDArray[np.intp], first: dict, size: NDArray[np.intp]
              ) -> dict[int, tuple[list[int], int]]:
        """Per class: its representatives that are not pinned, and how many big units they
        stand for."""
        out = {}
        for k, members in first.items():
            free = [a for a in members if a not in pinned]
            out[k] = (free, int(size[k]) - (len(members) - len(free)))
        return out

    def _single_weights(self, pinned: set[int], cls_of, first, size) -> Array:
        w = np.zeros(len(cls_of))
        for a in pinned:
            w[a] += 1.0
        for free, count in self._free(pinned, cls_of, first, size).values():
            if free and count > 0:
                w[free[0]] += count
        return w

    def _pair_weights(self, pinned: set[int], cls_of, first, size) -> Array:
        n = len(cls_of)
        w = np.zeros((n, n))
        free = self._free(pinned, cls_of, first, size)
        # a single "slot": a pinned unit (weight 1) or the first free representative of a class
        slots = [(a, 1.0, None) for a in pinned]
        slots += [(f[0], float(c), k) for k, (f, c) in free.items() if f and c > 0]
        for a, wa, ka in slots:
            for b, wb, kb in slots:
                if ka is not None and ka == kb:  # both free in the same class
                    f, c = free[ka]
                    w[a, a] += c  # the same unit
                    if c >= 2:
                        w[f[0], f[1]] += c * (c - 1)  # two different units
                else:
                    w[a, b] += wa * wb
        return w

    def _expand(self, small: Array, rows: int, cols: int) -> Array:
        """Big matrix (…, rows, cols) from a small one, by the class of each index pair."""
        return small[..., self._rows[:rows, :cols], self._cols[:rows, :cols]]

    def moments(self, C: Array, v: Array, w: Array, noise: float = 0.0) -> tuple[Array, Array]:
        """(s, E) of `scalex.engines.ode_system.field_moments` (erf) for one covariance C."""
        if self.trivial:
            return field_moments(C, v, w, "erf", noise)
        K, Ks = self.K, self.K_small
        idx = self.index
        Cs = C[np.ix_(idx, idx)]
        vs = v[idx[:Ks]]
        cs = coefficients(vs, w[idx[Ks:] - K])
        students = np.arange(Ks)
        j2 = J2(Cs)[:Ks]
        i3 = I3(Cs, students, students, None)[students, students]  # (Ks, n): I3(i, i, c)
        s = vs[:, None] * cs[None, :] * j2
        s[students, students] -= vs * np.einsum("ic,c,ic->i", self.w1, cs, i3)
        i4 = I4(Cs, students, students, None, None)
        E = vs[:, None] * vs[None, :] * np.einsum("ijcd,c,d,ijcd->ij", self.w2, cs, cs, i4)
        if noise:
            E = E + noise**2 * vs[:, None] * vs[None, :] * j2[:, :Ks]
        return self._expand(s, K, K + self.M), self._expand(E, K, K)

    def generalization_error(self, C: Array, v: Array, w: Array) -> Array:
        """ε_g = ½ cᵀ I2(C) c (docs/theory.md eq. (3.11)) for covariances C (…, K+M, K+M)."""
        if self.trivial:
            c = coefficients(v, w)
            return 0.5 * np.einsum("a,...ab,b->...", c, I2(C), c)
        idx = self.index
        Cs = C[..., idx[:, None], idx[None, :]]
        cs = coefficients(v[idx[:self.K_small]], w[idx[self.K_small:] - self.K])
        return 0.5 * np.einsum("ab,a,b,...ab->...", self.wq, cs, cs, I2(Cs))
