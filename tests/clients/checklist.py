"""The pass/fail counter the pymemcache check scripts share: each call is one check, the first
wrong answer stops the script with an AssertionError naming it."""


class Checks:
    def __init__(self):
        self.passed = 0

    def __call__(self, cond, what):
        """One check: `cond` must hold; `what` names it in the failure."""
        if not cond:
            raise AssertionError(what)
        self.passed += 1
