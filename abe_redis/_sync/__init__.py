"""The blocking facade: the async facade driven from a portal thread."""
