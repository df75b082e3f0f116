"""Screens of the dashboard: the factory (main), one node, and the modal dialogs."""
