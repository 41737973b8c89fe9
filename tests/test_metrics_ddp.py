"""The confusion matrix is summed across DDP ranks: two processes on halves equal one process on the whole."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rsseg.metrics.accumulators import SegmentationMetrics

NAMES = ["a", "b", "c", "d"]


def _data():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (4, 16, 16), generator=generator)
    target[:, :2] = 255
    preds = torch.randint(0, 4, (4, 16, 16), generator=generator)
    return preds, target


def _rank(rank: int, init_file: str, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    preds, target = _data()
    metric = SegmentationMetrics(4, NAMES)
    metric.update(preds[rank * 2 : rank * 2 + 2], target[rank * 2 : rank * 2 + 2])
    result = metric.compute()
    queue.put((rank, result["confusion"], result["miou"]))
    dist.barrier()
    dist.destroy_process_group()


def test_two_ranks_give_the_single_process_metrics(tmp_path):
    preds, target = _data()
    single = SegmentationMetrics(4, NAMES)
    single.update(preds, target)
    expected = single.compute()

    context = mp.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_rank, args=(rank, str(tmp_path / "init"), queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for _, confusion, miou in results:
        assert confusion == expected["confusion"]
        assert miou == expected["miou"]
    assert sum(map(sum, expected["confusion"])) == 4 * 14 * 16  # ignored rows left out
