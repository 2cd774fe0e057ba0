"""Statistics over requests and their events: the figures behind the desk's charts."""
