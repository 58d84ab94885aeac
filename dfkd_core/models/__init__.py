"""The networks, the teachers (trained, cached, shipped, the user's own) and the student to take away."""
