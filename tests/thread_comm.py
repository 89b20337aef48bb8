"""A communicator of threads, for the runner's MPI-group code in-process."""


class ThreadComm:
    """bcast and allgather between threads, matched by call order as MPI matches collectives."""

    def __init__(self, rank: int, size: int, shared: dict):
        self.rank, self.size, self.shared = rank, size, shared
        self.calls = 0

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def _collective(self, value):
        number, self.calls = self.calls, self.calls + 1
        with self.shared["condition"]:
            self.shared.setdefault(number, {})[self.rank] = value
            self.shared["condition"].notify_all()
            self.shared["condition"].wait_for(lambda: len(self.shared[number]) == self.size)
            return self.shared[number]

    def bcast(self, value, root=0):
        return self._collective(value)[root]

    def allgather(self, value):
        values = self._collective(value)
        return [values[rank] for rank in range(self.size)]

    def allreduce(self, value):
        return sum(self.allgather(value))
