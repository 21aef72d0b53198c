"""Built-in Chinese queries for lived-in indoor scenes (`crawl_baidu --default-queries`): the original
crawler's seven first, then SceneImg's own.

Phrased the way people caption their own photos (真实, 日常, 实拍) rather than the way shops caption
showroom renders, because the target is moderately messy rooms full of graspable objects.
"""
from pathlib import Path

from crawl.original import sanitize

# The original crawler.py's built-in queries, in its order: they come first in DEFAULT_QUERIES.
ORIGINAL_QUERIES = [
    "室内 场景 日常 杂物",
    "家居 室内 生活 场景 自然 光线",
    "客厅 室内 生活 气息 真实",
    "厨房 室内 桌面 杂物",
    "卧室 室内 稍微 凌乱",
    "书房 室内 桌面 物品",
    "工作室 室内 工具 生活化",
]

SCENEIMG_QUERIES = [
    # rooms as they are lived in
    "真实客厅 日常 杂物",
    "家里客厅 实拍 生活气息",
    "卧室 实拍 乱 衣服",
    "学生宿舍 桌面 实拍",
    "出租屋 房间 实拍",
    "儿童房 玩具 散落",
    "书房 书桌 杂乱",
    # kitchens and dining
    "厨房 台面 杂物 实拍",
    "家里厨房 日常 锅碗瓢盆",
    "餐桌 吃完饭 碗筷",
    "冰箱 里面 食物 实拍",
    "水槽 待洗 餐具",
    # desks and work surfaces
    "办公桌 桌面 文具 杂乱",
    "电脑桌 桌面 实拍",
    "工作台 工具 摆放",
    "书桌 收纳 文具 书本",
    "化妆台 化妆品 摆放 实拍",
    # shelves and storage
    "书架 书籍 摆件",
    "置物架 物品 实拍",
    "储物间 杂物",
    "收纳柜 打开 物品",
    "衣柜 内部 衣物 实拍",
    "鞋柜 玄关 鞋子",
    "阳台 杂物 收纳",
    "车库 工具 杂物",
    # bathrooms and laundry
    "卫生间 洗漱台 物品",
    "浴室 置物架 洗护用品",
    "洗衣房 洗衣机 杂物",
    # clutter and everyday objects
    "茶几 杂物 遥控器 水杯",
    "床头柜 物品 实拍",
    "桌面 零食 杂物",
    "地上 玩具 散落 客厅",
    "搬家 纸箱 房间",
    "手工 桌面 材料 工具",
    "教室 课桌 书本",
    "实验室 桌面 器材",
    "仓库 货架 物品",
    "便利店 货架 商品",
]

DEFAULT_QUERIES = ORIGINAL_QUERIES + [q for q in SCENEIMG_QUERIES if q not in ORIGINAL_QUERIES]


def read_query_file(path):
    """One query per line; blank lines and lines starting with # are skipped."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def collect(queries=(), query_file=None, default=False):
    """The queries of one crawl, in order, without repeats."""
    out = list(queries or ())
    if query_file:
        out += read_query_file(query_file)
    if default:
        out += DEFAULT_QUERIES
    seen, result = set(), []
    for q in out:
        q = q.strip()
        if q and q not in seen:
            seen.add(q)
            result.append(q)
    return result


def query_for_folder(name):
    """The query behind an original output folder name (the query, sanitized): a built-in query when
    one sanitizes to that name, else the name itself."""
    for query in DEFAULT_QUERIES:
        if sanitize(query) == name:
            return query
    return name
