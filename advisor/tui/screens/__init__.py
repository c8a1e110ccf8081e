"""The wizard's screens: one module per step, then the recommendation, the run and the dialogs."""
