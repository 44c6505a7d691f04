"""``m2``: the semi-supervised model of Kingma et al. (2014): a conditional VAE whose label is
observed on some rows and inferred by a classifier q(y | x) on the others. The data section's
``labels_per_class`` hides all but a few training labels; the training section's
``classify_weight`` weighs log q(y | x) on the labelled rows (default 0.1 N)."""

from __future__ import annotations

from bayesgen.variants.base import Variant


class M2(Variant):
    name = "m2"
    summary = "semi-supervised: a conditional VAE with a classifier q(y | x) for unlabelled rows"
    conditional = True
    semi_supervised = True

    def parts(self, options, **data):
        return {"semi_supervised": True}

    def objective(self, options, base, train, n_train: int):
        from bayesgen.lvm.semisupervised import SemiSupervised

        return SemiSupervised(inner=base, alpha=0.1 * n_train if train.classify_weight is None
                              else train.classify_weight)
