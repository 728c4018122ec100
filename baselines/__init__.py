"""The reference multi-task baseline: a small transformer trained on a unified file.

Everything it reads comes through ``unify.reader``; everything it writes is a prediction
file in the format ``evalserver score`` accepts (``evalserver.metrics`` writers).
"""
