"""Dashboard widgets, one per module; each renders a frozen snapshot and never does IO."""
