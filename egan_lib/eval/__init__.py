"""Evaluation, one concern per module (import the one you need: ``from egan_lib.eval import protocol``).

    stats       Wilson intervals, mean intervals, eps keys, the accuracy summary of an attack
    timing      seconds per image (warm-up, median of repeats, device synchronised)
    protocol    the paper's protocol: one x_adv per eps for every method, accuracy and time
    results     Results / Examples, results files (read, merge, write) and the commit stamp
    schema      the results file's schema, validated in one place
    adaptive    accuracy under attacks through the defense, convergence, the eps >= 0.5 bound
    campaign    chapter 07's attack campaign: the plan from the profile, one stored piece per
                (defense, attack, eps), resumable in the background
    campaign_report  the campaign read for chapter 07: tables, curves, worst case, JSON, checklist
    claims      the paper's claims checked against the numbers
    references  published robust accuracies on MNIST
"""
