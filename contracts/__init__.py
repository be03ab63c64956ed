"""The contracts between the stages: the files one stage writes and the next reads, and the small
types they share. Every stage imports from here; nothing here imports a stage."""
