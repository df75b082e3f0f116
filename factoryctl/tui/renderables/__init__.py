"""Rich renderables that draw the dashboard; each can be rendered and tested without a Textual App."""
