"""Infrastructure shared by every tollgate service: no domain types, no context imports."""
