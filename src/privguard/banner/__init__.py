"""The consent banner: markup, script, styles, translations and the HTML injector.

``BannerRenderer`` renders (once, at start-up) everything the middleware puts into
pages; ``HtmlInjector`` streams a response body and inserts it.
"""

from privguard.banner.inject import HtmlInjector as HtmlInjector
from privguard.banner.render import BannerRenderer as BannerRenderer

__all__ = ["BannerRenderer", "HtmlInjector"]
