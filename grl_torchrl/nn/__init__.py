# PLACEHOLDER — replaced by the networks work (issue 2).
