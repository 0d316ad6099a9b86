"""Custom per-modality encoders passed to the estimator (``shared_encoders=``,
``specific_encoders=``): validation, and how they appear in saved configs.

A custom encoder is any ``torch.nn.Module`` mapping a batch of one modality, shape (B, ...), to
(B, shared_dim) (shared) or (B, specific_dim) (specific). The estimator deep-copies the modules
at every fit, so the objects passed in are never trained in place and ``sklearn.clone`` gives
an independent estimator. Their weights are saved in ``model.safetensors`` like the default
MLPs, but their code is not: :meth:`DisentangledSSL.load` needs the same modules passed again
(``load(path, shared_encoders=[...])``); the config records their class names to check this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from disentangled_ssl._errors import DSSLError

#: Prefix of the placeholder written to config.json instead of a custom module list.
MARKER = "custom:"
ENCODER_PARAMS = ("shared_encoders", "specific_encoders")


def describe(modules: Sequence[nn.Module] | None) -> str | None:
    """JSON-safe placeholder for a module list: ``"custom:SmallCNN,SmallCNN"`` (None stays)."""
    if modules is None or isinstance(modules, str):
        return modules
    return MARKER + ",".join(type(m).__name__ for m in modules)


def check_encoders(name: str, modules: object) -> None:
    """None, or a list/tuple of ``nn.Module``; a saved placeholder gets a message saying to
    pass the modules again."""
    if modules is None:
        return
    if isinstance(modules, str):
        if modules.startswith(MARKER):
            raise DSSLError(
                f"this model was saved with custom {name} ({modules[len(MARKER):]}); their code "
                f"is not saved: pass the same modules again, e.g. "
                f"DisentangledSSL.load(path, {name}=[...])"
            )
        raise DSSLError(f"{name} must be a list of torch.nn.Module (one per modality), got "
                        f"{modules!r}")
    if not isinstance(modules, (list, tuple)) or not modules:
        raise DSSLError(f"{name} must be a non-empty list of torch.nn.Module (one per "
                        f"modality), got {type(modules).__name__}")
    for k, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise DSSLError(f"{name}[{k}] is a {type(m).__name__}, not a torch.nn.Module")


def json_safe_params(params: Mapping[str, object]) -> dict[str, object]:
    """Estimator params with module lists replaced by their placeholders and modality kind
    objects by their dicts."""
    out = dict(params)
    for name in ENCODER_PARAMS:
        if name in out:
            out[name] = describe(out[name])  # type: ignore[arg-type]
    augmentations = out.get("augmentations")
    if isinstance(augmentations, (list, tuple)):
        out["augmentations"] = MARKER + ",".join(
            "default" if a is None else type(a).__name__ for a in augmentations)
    modalities = out.get("modalities")
    if isinstance(modalities, (list, tuple)):
        out["modalities"] = [m.to_dict() if hasattr(m, "to_dict") else m for m in modalities]
    elif hasattr(modalities, "to_dict"):
        out["modalities"] = modalities.to_dict()  # type: ignore[union-attr]
    return out


def check_same_encoders(name: str, saved: object, given: Sequence[nn.Module] | None,
                        source: str) -> None:
    """At load time the modules passed must be of the classes recorded in the config."""
    if saved is None and given is None:
        return
    if saved is None:
        raise DSSLError(f"{source} was saved with the default {name}; do not pass {name}")
    if given is None:
        check_encoders(name, saved)
        return
    check_encoders(name, list(given))
    if describe(list(given)) != saved:
        raise DSSLError(f"{source} was saved with {name} {saved!r} but got "
                        f"{describe(list(given))!r}; pass the same module classes")
