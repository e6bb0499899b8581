"""The admin console's files at /admin: what is served, with which headers, and what the code may do.

The console itself is driven in a real browser by tests/e2e/test_admin_console.py.
"""

from __future__ import annotations

import re

from api_service.handlers import console
from tests.support.cases import ApiCase

FILES = {
    "/admin": "text/html",
    "/admin/admin.js": "text/javascript",
    "/admin/admin.css": "text/css",
}


def directives(header: str) -> dict[str, str]:
    return {words[0]: " ".join(words[1:]) for words in (d.split() for d in header.split(";")) if words}


class ConsoleFilesTest(ApiCase):
    async def test_each_file_with_a_strict_policy_and_no_caching(self):
        for path, content_type in FILES.items():
            with self.subTest(path=path):
                response = await self.client.get(path)
                self.assertEqual(response.status, 200)
                self.assertEqual((response.content_type, response.charset), (content_type, "utf-8"))
                headers = response.headers
                self.assertEqual(headers["Cache-Control"], "no-store")
                self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
                self.assertEqual(headers["X-Frame-Options"], "DENY")
                self.assertEqual(headers["Referrer-Policy"], "no-referrer")
                csp = directives(headers["Content-Security-Policy"])
                self.assertEqual(csp["default-src"], "'none'")
                self.assertEqual(csp["script-src"], "'self'")  # no inline code, no eval, no CDN
                self.assertEqual(csp["style-src"], "'self'")
                self.assertEqual(csp["connect-src"], "'self'")
                self.assertEqual(csp["frame-ancestors"], "'none'")
                self.assertEqual(csp["form-action"], "'none'")
                self.assertEqual(csp["base-uri"], "'none'")
                self.assertNotIn("unsafe", headers["Content-Security-Policy"])
                served = (console.STATIC / console.FILES[path][0]).read_bytes()
                self.assertEqual(await response.read(), served)

    async def test_the_page_loads_only_its_own_files_and_has_no_inline_code(self):
        html = await (await self.client.get("/admin")).text()
        self.assertNotRegex(html, r"(?i)<script(?![^>]*\bsrc=)[^>]*>")  # every script is a file
        self.assertNotRegex(html, r"(?i)\son[a-z]+\s*=")  # no inline event handlers
        self.assertNotRegex(html, r"(?i)<style|\sstyle\s*=")  # no inline style
        assets = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
        self.assertEqual(sorted(assets), ["/admin/admin.css", "/admin/admin.js"])
        self.assertIn('<script type="module" src="/admin/admin.js">', html)

    async def test_the_script_never_writes_html_or_keeps_tokens_beyond_the_tab(self):
        script = (console.STATIC / "admin.js").read_text()
        for forbidden in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "document.cookie",
            "http://",
            "https://",
        ):
            self.assertNotIn(forbidden, script, forbidden)
        self.assertIn("sessionStorage", script)
        self.assertIn("/auth/refresh", script)
        self.assertNotRegex(script, r"[?&](access|refresh)?_?[Tt]oken=")  # never in a query string

    async def test_nothing_else_is_served_under_admin(self):
        for path in (
            "/admin/",
            "/admin/admin.html",
            "/admin/console.js",
            "/admin/..%2Fapp.py",
            "/admin/static/admin.js",
            "/admin/admin.js.map",
        ):
            with self.subTest(path=path):
                self.assertEqual((await self.client.get(path)).status, 404)
        response = await self.client.post("/admin")
        self.assertEqual(response.status, 405)

    async def test_the_old_jobs_page_is_the_consoles_jobs_view(self):
        response = await self.client.get("/admin/jobs", allow_redirects=False)
        self.assertEqual(response.status, 302)
        self.assertEqual(response.headers["Location"], "/admin#jobs")
