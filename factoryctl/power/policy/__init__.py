"""The pure power-policy engine: policies, the Lagrangian price ladder, and one decision step.

No IO and no UI here (an import-linter contract holds it): the simulator and the controller feed it a
`PriceView` and apply the `PowerAction` it returns.
"""
