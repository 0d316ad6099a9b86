# %% [markdown]
# # Images and captions
#
# Modalities are not always vectors. This tutorial pairs images with captions: an image
# modality with a small CNN and a text modality of word ids with a Transformer. The data is
# the `emoji-captions` set that ships with the library: each Unicode emoji drawn by Noto Color
# Emoji (32 × 32 RGB) and captioned by its English CLDR name and keywords. No download is
# needed.
#
# What do an emoji and its caption share? What the emoji is: its name, its group and its
# skin tone are in both. The shared codes should therefore find an emoji's caption among
# hundreds, and predict the Unicode group.
#
# The budget is small: 40 + 5 epochs on 16 × 16 images, about two minutes on a CPU. The full
# benchmark, with 3 seeds and CLIP next to it, is on
# [the emoji-captions page](../real-tasks/emoji-captions.md).

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from disentangled_ssl import DisentangledSSL, Image, Tokens, linear_probe, retrieval_metrics
from disentangled_ssl.data.datasets import load_dataset
from disentangled_ssl.experiments.real import retrieval_grid

# %% [markdown]
# ## The data
#
# `load_dataset("emoji-captions")` returns a `MultimodalData`. Its view `image` is
# (n, 3, 32, 32) floats in [0, 1]. Its view `caption` is (n, 24) integer word ids padded with
# 0, and `vocabularies["caption"]` maps the ids back to words. The labels are for evaluation
# only.

# %%
data = load_dataset("emoji-captions")
vocabulary = data.vocabularies["caption"]
print(len(data), "pairs |", data.view_names, [v.shape for v in data.views], "|",
      len(vocabulary), "words | labels:", sorted(data.labels))

names = list(data.labels["caption_text"])
examples = ["cat face", "pizza", "thumbs up: dark skin tone", "woman astronaut: medium-light "
            "skin tone", "sun with face", "flag: Japan"]
fig, axes = plt.subplots(1, len(examples), figsize=(11, 2.8), layout="constrained")
for ax, name in zip(axes, examples):
    i = next(k for k, caption in enumerate(names) if caption.split(" | ")[0] == name)
    ax.imshow(np.moveaxis(data.x1[i], 0, -1))
    words = [vocabulary[t] for t in data.x2[i] if t]  # the ids back to words
    ax.set_title("\n".join(" ".join(words[k:k + 3]) for k in range(0, len(words), 3)),
                 fontsize=8, va="bottom")
    ax.set_axis_off()
fig.suptitle("Emoji and the words of their captions")
plt.show()

# %% [markdown]
# 600 test pairs are held out, stratified by group. For speed on a CPU the images are
# averaged down to 16 × 16 pixels (the originals stay for the figures).

# %%
train, test = data.stratified_split("group", test_size=600, seed=0)


def half_size(images: np.ndarray) -> np.ndarray:
    """(n, 3, 32, 32) -> (n, 3, 16, 16): the mean of each 2 × 2 block."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


train_views = [half_size(train.x1), train.x2]
test_views = [half_size(test.x1), test.x2]
print("train", [v.shape for v in train_views], "| test", [v.shape for v in test_views])

# %% [markdown]
# ## One kind per modality
#
# `modalities=` declares what each view is. `Image` builds a residual CNN encoder with random
# crops as its augmentation. `Tokens` builds an embedding and a Transformer over the word ids,
# with masked mean pooling; integer ids must be declared as tokens, or they would be read as
# numbers. Every method of the library takes the same kinds. β = 0.1 keeps most of the shared
# information in step 1.

# %%
model = DisentangledSSL(
    modalities=(Image(cnn_width=16), Tokens(d_model=64, n_layers=1)),
    beta=0.1, shared_dim=32, specific_dim=32, hidden_dim=64,
    shared_epochs=40, specific_epochs=5, batch_size=128, lr=2e-3,
    random_state=0, verbose=False,
).fit(train_views)
for kind in model.modalities_:
    print(kind.describe())

# %% [markdown]
# ## Retrieval: find each image's caption
#
# Rank the 600 test captions by the cosine between their shared codes and the image's
# shared code (and the other way round). Chance is 1 in 600 for top-1.

# %%
emb_train, emb_test = model.transform(train_views), model.transform(test_views)
image_to_caption = retrieval_metrics(emb_test.shared1, emb_test.shared2)
caption_to_image = retrieval_metrics(emb_test.shared2, emb_test.shared1)
chance = {"top1": 1 / 600, "top5": 5 / 600, "top10": 10 / 600}
print(f"{'':<17}" + "".join(f"{k:>8}" for k in chance))
for name, scores in [("image -> caption", image_to_caption),
                     ("caption -> image", caption_to_image), ("chance", chance)]:
    print(f"{name:<17}" + "".join(f"{scores[k]:8.3f}" for k in chance))

# %% [markdown]
# One query image per group, with its three nearest captions; the true caption is green.
# Near misses are common: the neighbours of a hand are other hands in the same skin tone.
# At this budget some queries also miss by far.

# %%
fig = retrieval_grid(test.x1, test.labels["caption_text"], emb_test.shared1,
                     emb_test.shared2, test.labels["group"], cols=1,
                     title="Image -> caption by the shared codes (600 test pairs)")
fig.savefig(Path(tempfile.mkdtemp()) / "retrieval.png")  # a file when run as a script
fig

# %% [markdown]
# ## What the codes know about the group
#
# A linear probe of the Unicode group (9 classes) on each code, against the share of the
# largest group ("People & Body", through its skin-tone variants). The group is part of what
# the image and its caption share, so the shared codes should hold more of it than the
# specific ones.

# %%
train_group, test_group = {"group": train.labels["group"]}, {"group": test.labels["group"]}
majority = max(np.mean(test.labels["group"] == g) for g in np.unique(test.labels["group"]))
print(f"{'majority class':<16} {majority:.3f}")
for code in ["shared", "shared1", "shared2", "specific1", "specific2"]:
    accuracy = linear_probe(getattr(emb_train, code), train_group, getattr(emb_test, code),
                            test_group)["group"]
    size = getattr(emb_test, code).shape[1]
    print(f"{code:<10} {size:>2}-d  {accuracy:.3f}")

# %% [markdown]
# ## Your own images and captions
#
# Images as a float array (n, C, H, W) in [0, 1]; captions as integer ids (n, L) padded with
# 0, from any tokenizer (`Tokens(vocab_size=...)` if the test captions may hold ids that the
# training rows lack). The same works from files: `.npy`/`.npz` arrays keep their shape and
# integer type, e.g. `dssl fit --x1 images.npy --x2 captions.npy --modalities image,tokens`.
# Sequences (n, T, d) have their own kind, `Sequence`, and `modalities="auto"` reads the kind
# from the array's rank ([Modalities](../modalities.md)).
