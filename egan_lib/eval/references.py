"""Published robust accuracies on MNIST at eps = 0.3, to put our numbers in context (each with its attack,
its threat model and its source). They are points at their eps, not lines across every eps."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceLine:
    """A published robust accuracy on MNIST, for a horizontal line in a figure."""
    label: str
    accuracy: float      # fraction in [0, 1]
    eps: float           # L-inf budget on [0, 1] pixels
    attack: str          # the attack that produced the number
    source: str          # where the number is published


#: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
#: Attacks", ICLR 2018: a CNN adversarially trained with PGD (eps = 0.3). On the white-box
#: leaderboard of their MNIST challenge (github.com/MadryLab/mnist_challenge, README, "White-Box
#: Leaderboard"), 100-step PGD on the cross-entropy loss with 50 random restarts leaves 89.62%.
MADRY_PGD_AT_MNIST = ReferenceLine(
    label="PGD adversarial training (Madry et al. 2018)", accuracy=0.8962, eps=0.3,
    attack="100-step PGD, cross-entropy, 50 random restarts (white-box)",
    source="Madry et al., ICLR 2018; MadryLab/mnist_challenge white-box leaderboard (initial entry, Nov 2017)")

#: The same model under the strongest entry of that leaderboard: "Guided Local Attack" (Aug 2021): 88.00%.
#: Every entry since 2018 lies between 88.0% and 88.9%: the ~88-89% of the adversarial-training line.
MADRY_PGD_AT_MNIST_BEST = ReferenceLine(
    label="PGD adversarial training, best known attack", accuracy=0.8800, eps=0.3,
    attack="Guided Local Attack (best white-box leaderboard entry)",
    source="MadryLab/mnist_challenge white-box leaderboard (Aug 2021)")

#: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off between Robustness
#: and Accuracy" (TRADES), ICML 2019: their MNIST SmallCNN (natural accuracy 99.48%) keeps 96.07%
#: under 40-step PGD ("FGSM-40") and 92.46% under the best entry ("ITA", Aug 2021) of the white-box
#: leaderboard in github.com/yaodongyu/TRADES (README, MNIST, eps = 0.3); EWR-PGD 92.47%, Square 92.58%.
TRADES_MNIST = ReferenceLine(
    label="TRADES (Zhang et al. 2019)", accuracy=0.9246, eps=0.3,
    attack="ITA (best white-box leaderboard entry)",
    source="Zhang et al., ICML 2019; yaodongyu/TRADES white-box leaderboard (MNIST, Aug 2021)")

#: Zhang, Chen, Xiao, Gowal, Stanforth, Li, Boning & Hsieh, "Towards Stable and Efficient Training of
#: Verifiably Robust Neural Networks" (CROWN-IBP), ICLR 2020: verified (certified) error 7.46% on MNIST at
#: eps = 0.3 (their README, github.com/huanzhang12/CROWN-IBP; a later run there reports 6.68%). A
#: certified number holds against every attack in the eps ball, not just the ones tried.
CROWN_IBP_MNIST = ReferenceLine(
    label="CROWN-IBP, certified (Zhang et al. 2020)", accuracy=0.9254, eps=0.3,
    attack="none needed: verified lower bound for every perturbation in the ball",
    source="Zhang et al., ICLR 2020; huanzhang12/CROWN-IBP README (verified error 7.46% at eps 0.3)")

REFERENCE_LINES = (MADRY_PGD_AT_MNIST, MADRY_PGD_AT_MNIST_BEST, TRADES_MNIST, CROWN_IBP_MNIST)
#: The references at their best known attack (or certified), the ones a figure should show.
BEST_KNOWN = (MADRY_PGD_AT_MNIST_BEST, TRADES_MNIST, CROWN_IBP_MNIST)
