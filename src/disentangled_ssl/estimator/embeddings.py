"""What :meth:`DisentangledSSL.transform` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.methods import DEFAULT_METHOD, get_method, method_names


def _shared_only_methods() -> list[str]:
    return [m for m in method_names() if not get_method(m).has_specific]


@dataclass
class Embeddings:
    """Embeddings of M paired modalities (numpy float32, one row per input row).

    Attributes:
        shared_list: per modality, (n, shared_dim) deterministic shared codes.
        specific_list: per modality, (n, specific_dim) specific codes (empty if not fitted).
        method: the method that produced them (names it in errors).
    """

    shared_list: list[np.ndarray]
    specific_list: list[np.ndarray]
    method: str = DEFAULT_METHOD

    @property
    def shared1(self) -> np.ndarray:
        return self.shared_list[0]

    @property
    def shared2(self) -> np.ndarray:
        return self.shared_list[1]

    @property
    def specific1(self) -> np.ndarray:
        return self._specific(0)

    @property
    def specific2(self) -> np.ndarray:
        return self._specific(1)

    @property
    def shared(self) -> np.ndarray:
        """All modalities' shared codes side by side: (n, M · shared_dim)."""
        return np.concatenate(self.shared_list, axis=1)

    def _specific(self, i: int) -> np.ndarray:
        if not self.specific_list and self.method in _shared_only_methods():
            with_specific = [m for m in method_names() if m not in _shared_only_methods()]
            raise DSSLError(
                f"method {self.method!r} learns no specific representation (it is "
                "shared-only); use shared1/shared2, or fit a method with specific codes: "
                + ", ".join(with_specific)
            )
        if not self.specific_list:
            raise DSSLError(
                "no specific representation: the specific step was not trained "
                "(specific_epochs=0 or a shared-only method)"
            )
        return self.specific_list[i]

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{"shared1": ..., "shared2": ..., "specific1": ..., ...}``."""
        out = {f"shared{i + 1}": s for i, s in enumerate(self.shared_list)}
        out.update({f"specific{i + 1}": s for i, s in enumerate(self.specific_list)})
        return out
