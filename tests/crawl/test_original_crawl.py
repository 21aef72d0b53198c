"""crawl_baidu and search_by_images behave as the original crawler.py and search_by_images.py did."""
import io

import pytest
from django.core.management import call_command

from crawl import queries
from crawl.models import Source
from tests.fakes.baidu import serve_for_test

# crawler.py's build_queries(default=True), in its order.
ORIGINAL_DEFAULT_QUERIES = [
    "室内 场景 日常 杂物",
    "家居 室内 生活 场景 自然 光线",
    "客厅 室内 生活 气息 真实",
    "厨房 室内 桌面 杂物",
    "卧室 室内 稍微 凌乱",
    "书房 室内 桌面 物品",
    "工作室 室内 工具 生活化",
]


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


def last_line(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_the_original_default_queries_come_first():
    assert queries.DEFAULT_QUERIES[:7] == ORIGINAL_DEFAULT_QUERIES
    assert len(set(queries.DEFAULT_QUERIES)) == len(queries.DEFAULT_QUERIES) > 7
    assert queries.collect(default=True)[:7] == ORIGINAL_DEFAULT_QUERIES


@pytest.mark.django_db(transaction=True)
def test_a_rerun_fetches_limit_new_images_not_limit_duplicates(fake_baidu):
    fake_baidu.queries = {"客厅": list(range(6000, 6100))}
    assert last_line("crawl_baidu", "-q", "客厅", "--limit-per-query", "40") == \
        "stored 40, duplicate 0, invalid 0, error 0"
    downloads = fake_baidu.hits["original"]
    assert last_line("crawl_baidu", "-q", "客厅", "--limit-per-query", "40") == \
        "stored 40, duplicate 40, invalid 0, error 0"
    assert fake_baidu.hits["original"] - downloads == 40  # the 40 already seen were not fetched again
    ranks = sorted(Source.objects.filter(outcome="stored").values_list("rank", flat=True))
    assert ranks == list(range(1, 81))


@pytest.mark.django_db(transaction=True)
def test_repeated_results_do_not_count_towards_the_limit(fake_baidu):
    # Baidu lists the same picture several times: only new pictures count, as the original's saved count.
    fake_baidu.queries = {"书桌": [7000, 7000, 7001, 7000, 7002, 7003, 7004, 7005]}
    line = last_line("crawl_baidu", "-q", "书桌", "--limit-per-query", "4")
    assert line == "stored 4, duplicate 2, invalid 0, error 0"
    assert {s.url.rsplit("/", 1)[1] for s in Source.objects.filter(outcome="duplicate")} == {"7000.jpg"}
