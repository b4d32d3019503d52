"""From runs to verdicts: seed statistics and the verdict rule, power, the paper's claims, figures."""
