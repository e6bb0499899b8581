"""GET /api/v1/openapi.json is generated from the handlers' own models and covers every /api/v1 route;
/api/v1/docs is Swagger UI from the swagger-ui-bundle-v2 wheel, served here under a strict CSP."""

import re
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel

from api_service import openapi
from api_service.schemas.auth import RegisterRequest
from api_service.schemas.envelope import ErrorEnvelope, LndHubError, LnurlError
from api_service.schemas.users import UserOut
from tests.api.test_users_access import USER_KEYS
from tests.support.cases import ApiCase

EXPECTED = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/users/me"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/{id}"),
    ("put", "/api/v1/users/{id}"),
    ("patch", "/api/v1/users/{id}"),
    ("delete", "/api/v1/users/{id}"),
}


# Routes deliberately left out of the document, each with its reason. Health checks are documented.
UNDOCUMENTED = {
    ("GET", "/api/v1/docs"): "the HTML docs page that renders this document",
    ("GET", "/api/v1/docs/{name}"): "static assets (script, style) of the docs page",
    ("GET", "/admin"): "the admin console's page, over the documented /api/v1 admin operations",
    ("GET", "/admin/admin.js"): "the admin console's script",
    ("GET", "/admin/admin.css"): "the admin console's stylesheet",
    ("GET", "/admin/jobs"): "the old jobs page: a redirect to the console's jobs view",
}


def routed_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route of ``app`` and its sub-applications.

    HEAD is left out: aiohttp adds it to every GET route by itself."""
    found = set()
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:  # add_subapp: its resources already carry the prefix
            found |= routed_operations(info["app"])
            continue
        found |= {(route.method, resource.canonical) for route in resource if route.method != "HEAD"}
    return found


def _shape(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# Routed but deliberately not documented: the HTML page that renders the document, and its files.
DOCS_PAGE = {("GET", "/api/v1/docs"), ("GET", "/api/v1/docs/{name}")}


class OpenApiTest(ApiCase):
    async def document(self):
        response = await self.client.get("/api/v1/openapi.json")
        self.assertEqual(response.status, 200)
        return await response.json()

    async def test_document_lists_every_auth_and_user_operation(self):
        doc = await self.document()
        self.assertEqual(doc["openapi"], "3.1.0")
        found = {(method, path) for path, item in doc["paths"].items() for method in item}
        self.assertLessEqual(EXPECTED, found)
        operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
        self.assertEqual(len(operation_ids), len(set(operation_ids)))

    async def test_every_reference_resolves(self):
        doc = await self.document()
        schemas = doc["components"]["schemas"]
        for ref in set(_refs(doc)):
            self.assertTrue(ref.startswith("#/components/schemas/"), ref)
            self.assertIn(ref.rsplit("/", 1)[1], schemas, ref)

    async def test_schemas_come_from_the_handler_models(self):
        doc = await self.document()
        register = doc["paths"]["/api/v1/auth/register"]["post"]
        self.assertEqual(
            register["requestBody"]["content"]["application/json"]["schema"],
            {"$ref": "#/components/schemas/RegisterRequest"},
        )
        body = doc["components"]["schemas"]["RegisterRequest"]
        self.assertEqual(sorted(body["properties"]), ["adminKey", "password", "username"])
        self.assertEqual(sorted(body["required"]), ["password", "username"])
        self.assertEqual(body["properties"]["username"]["pattern"], r"^[A-Za-z0-9_.-]{3,32}$")
        self.assertFalse(body.get("additionalProperties", True))
        self.assertIn("201", register["responses"])
        self.assertNotIn("security", register)
        user = doc["components"]["schemas"]["UserOut"]
        self.assertEqual(set(user["properties"]), USER_KEYS)
        self.assertNotIn("passwordHash", str(doc))

    async def test_auth_pagination_and_parameters(self):
        doc = await self.document()
        listing = doc["paths"]["/api/v1/users"]["get"]
        self.assertEqual(listing["security"], [{"bearerAuth": []}])
        self.assertEqual(listing["x-role"], "admin")
        self.assertIn("403", listing["responses"])
        self.assertEqual({p["name"] for p in listing["parameters"]}, {"page", "pageSize", "q"})
        ok = listing["responses"]["200"]["content"]["application/json"]["schema"]
        self.assertIn("pagination", ok["required"])
        self.assertEqual(ok["properties"]["data"]["type"], "array")
        one = doc["paths"]["/api/v1/users/{id}"]["get"]
        self.assertEqual(one["parameters"][0]["name"], "id")
        self.assertEqual(one["parameters"][0]["in"], "path")
        logout = doc["paths"]["/api/v1/auth/logout"]["post"]
        self.assertEqual(set(logout["responses"]) & {"204", "200"}, {"204"})

    async def test_every_api_v1_route_is_documented(self):
        doc = await self.document()
        documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
        routes = {
            (route.method, route.resource.canonical)
            for route in self.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
        api_routes = {(method, path) for method, path in routes if path.startswith("/api/v1/")}
        self.assertGreater(len(api_routes), 20)
        self.assertEqual(
            api_routes - documented - DOCS_PAGE, set(), "routes missing from the OpenAPI document"
        )
        self.assertEqual(DOCS_PAGE & documented, set())  # the page is not an API operation


class SwaggerUiTest(ApiCase):
    async def test_page_loads_swagger_ui_from_here_under_a_strict_csp(self):
        response = await self.client.get("/api/v1/docs")
        self.assertEqual(response.status, 200)
        self.assertEqual((response.content_type, response.charset), ("text/html", "utf-8"))
        header = response.headers["Content-Security-Policy"]
        csp = {words[0]: " ".join(words[1:]) for words in (d.split() for d in header.split(";")) if words}
        self.assertEqual(csp["default-src"], "'none'")
        self.assertEqual(csp["script-src"], "'self'")  # no inline code, no eval, no CDN
        self.assertEqual(csp["style-src"], "'self'")
        self.assertEqual(csp["connect-src"], "'self'")  # "Try it out" reaches this API only
        self.assertEqual(csp["frame-ancestors"], "'none'")
        html = await response.text()
        self.assertNotRegex(html, r"(?i)<script(?![^>]*\bsrc=)[^>]*>")  # every script is a file
        self.assertNotRegex(html, r"(?i)\son[a-z]+\s*=")  # no inline event handlers
        self.assertNotRegex(html, r"(?i)<style")
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        self.assertIn("docs/swagger-ui-bundle.js", assets)
        self.assertIn("docs/swagger-init.js", assets)
        for asset in assets:
            self.assertFalse(re.match(r"^(https?:)?//", asset), asset)

    async def test_assets_come_from_the_wheel_and_our_init_script(self):
        import swagger_ui_bundle

        wheel = Path(str(swagger_ui_bundle.swagger_ui_path))
        expected = {
            "swagger-ui-bundle.js": "text/javascript",
            "swagger-ui.css": "text/css",
            "index.css": "text/css",
            "favicon-32x32.png": "image/png",
            "swagger-init.js": "text/javascript",
        }
        for name, kind in expected.items():
            response = await self.client.get(f"/api/v1/docs/{name}")
            self.assertEqual((response.status, response.content_type), (200, kind), name)
            self.assertEqual(response.headers["X-Content-Type-Options"], "nosniff")
            body = await response.read()
            if name != "swagger-init.js":
                self.assertEqual(body, (wheel / name).read_bytes(), name)
        init = await (await self.client.get("/api/v1/docs/swagger-init.js")).text()
        self.assertIn('url: "openapi.json"', init)
        self.assertIn("validatorUrl: null", init)
        self.assertNotRegex(init, r"https?://")

    async def test_nothing_else_is_served_from_the_docs_folder(self):
        for name in (
            "docs.js",
            "docs.css",
            "swagger-ui-bundle.js.map",
            "index.html",
            "..%2Fapp.py",
            "oauth2-redirect.html",
        ):
            self.assertEqual((await self.client.get(f"/api/v1/docs/{name}")).status, 404, name)
        self.assertEqual((await self.client.get("/api/v1/docs/swagger-ui.html")).status, 404)


class RoutesAndDocumentAgreeTest(ApiCase):
    """Every route is documented and every documented operation is routed, with the same methods and
    path parameters (the exceptions above aside)."""

    def differences(self, routed: set, documented: set) -> list[str]:
        problems = []
        for method, path in sorted(documented - routed):
            twin = [p for m, p in routed - documented if m == method and _shape(p) == _shape(path)]
            if twin:
                problems.append(f"{method} {path}: routed as {twin[0]} (path parameters differ)")
            else:
                problems.append(f"{method} {path}: documented but not routed")
        for method, path in sorted(routed - documented - set(UNDOCUMENTED)):
            if not any(m == method and _shape(p) == _shape(path) for m, p in documented - routed):
                problems.append(f"{method} {path}: routed but not documented")
        return problems

    async def test_each_route_is_documented_and_each_operation_routed(self):
        routed = routed_operations(self.app)
        documented = {(op.method, op.path) for op in openapi.operations()}
        self.assertGreaterEqual(len(documented), 20)
        self.assertEqual(self.differences(routed, documented), [])
        doc = openapi.build_document()
        in_document = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
        self.assertEqual(in_document, documented)

    async def test_exceptions_are_routes_and_not_documented(self):
        routed = routed_operations(self.app)
        documented = {(op.method, op.path) for op in openapi.operations()}
        for key, reason in UNDOCUMENTED.items():
            self.assertIn(key, routed, f"stale exception ({reason})")
            self.assertNotIn(key, documented, f"documented after all: drop the exception ({reason})")

    def test_a_mismatch_in_either_direction_is_reported(self):
        routed = {("GET", "/api/v1/payments/{id}"), ("POST", "/api/v1/payments"), ("GET", "/x")}
        documented = {("GET", "/api/v1/payments/{paymentId}"), ("POST", "/api/v1/payment"), ("PUT", "/x")}
        self.assertEqual(
            self.differences(routed, documented),
            [
                "GET /api/v1/payments/{paymentId}: routed as /api/v1/payments/{id} (path parameters differ)",
                "POST /api/v1/payment: documented but not routed",
                "PUT /x: documented but not routed",
                "GET /x: routed but not documented",
                "POST /api/v1/payments: routed but not documented",
            ],
        )

    def test_sub_application_routes_are_found(self):
        async def handler(request: web.Request) -> web.Response:
            return web.Response()

        sub = web.Application()
        sub.router.add_get("/balance", handler)
        app = web.Application()
        app.add_subapp("/lndhub", sub)
        self.assertEqual(routed_operations(app), {("GET", "/lndhub/balance")})


class RegistryTest(ApiCase):
    async def test_other_modules_can_register_operations(self):
        class Thing(BaseModel):
            amount_sat: int

        openapi.register(
            "GET",
            "/api/v1/test-only/things/{thingId}",
            "A test thing",
            response_model=Thing,
            auth="user",
            errors=(404,),
            tags=("test",),
        )
        try:
            doc = openapi.build_document()
            op = doc["paths"]["/api/v1/test-only/things/{thingId}"]["get"]
            self.assertEqual(op["parameters"][0]["name"], "thingId")
            self.assertEqual(set(op["responses"]), {"200", "401", "404"})
            self.assertIn("Thing", doc["components"]["schemas"])
        finally:
            openapi._operations.pop(("GET", "/api/v1/test-only/things/{thingId}"))

    async def test_an_operation_declares_its_error_shape(self):
        openapi.register(
            "POST", "/lndhub/test-only", "A protocol route", auth=None, errors=(400,), error_model=LndHubError
        )
        try:
            op = next(op for op in openapi.operations() if op.path == "/lndhub/test-only")
            self.assertIs(op.error_model, LndHubError)
            doc = openapi.build_document()
            error = doc["paths"]["/lndhub/test-only"]["post"]["responses"]["400"]
            self.assertEqual(
                error["content"]["application/json"]["schema"], {"$ref": "#/components/schemas/LndHubError"}
            )
            self.assertEqual(
                set(doc["components"]["schemas"]["LndHubError"]["required"]), {"error", "code", "message"}
            )
            listing = doc["paths"]["/api/v1/users"]["get"]["responses"]["401"]
            self.assertEqual(
                listing["content"]["application/json"]["schema"],
                {"$ref": "#/components/schemas/ErrorEnvelope"},
            )
        finally:
            openapi._operations.pop(("POST", "/lndhub/test-only"))

    def test_error_shapes_are_strict(self):
        LndHubError.model_validate_json('{"error": true, "code": 8, "message": "bad arguments"}')
        LnurlError.model_validate_json('{"status": "ERROR", "reason": "amount out of range"}')
        for bad in (
            '{"error": 1, "code": 8, "message": "x"}',
            '{"error": true, "code": "8", "message": "x"}',
        ):
            with self.assertRaises(ValueError):
                LndHubError.model_validate_json(bad)
        with self.assertRaises(ValueError):
            ErrorEnvelope.model_validate_json('{"success": false, "error": {"code": "x", "message": "m"}}')

    def test_bad_auth_value_is_refused(self):
        with self.assertRaises(ValueError):
            openapi.register("GET", "/x", "x", auth="root")

    def test_models_are_the_handlers(self):
        ops = {(op.method, op.path): op for op in openapi.operations()}
        self.assertIs(ops[("POST", "/api/v1/auth/register")].request_model, RegisterRequest)
        self.assertIs(ops[("GET", "/api/v1/users/me")].response_model, UserOut)


class ProtocolOperationsTest(ApiCase):
    """The LndHub and LNURL routes are documented with their own success and error shapes."""

    def protocol_routes(self) -> set[tuple[str, str]]:
        routes = set()
        for route in self.app.router.routes():
            path = route.resource.canonical if route.resource is not None else ""
            if route.method != "HEAD" and path.startswith(("/lndhub/", "/.well-known/lnurlp/", "/lnurlp/")):
                routes.add((route.method.lower(), path))
        return routes

    async def test_every_protocol_route_is_documented_and_nothing_else(self):
        doc = openapi.build_document()
        documented = {
            (method, path)
            for path, item in doc["paths"].items()
            for method in item
            if path.startswith(("/lndhub/", "/.well-known/lnurlp/", "/lnurlp/"))
        }
        self.assertEqual(documented, self.protocol_routes())
        self.assertEqual(len(documented), 14)

    async def test_shapes(self):
        doc = openapi.build_document()
        schemas = doc["components"]["schemas"]
        pay = doc["paths"]["/lndhub/payinvoice"]["post"]
        self.assertEqual(pay["tags"], ["lndhub"])
        self.assertEqual(
            set(pay["requestBody"]["content"]),
            {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"},
        )
        self.assertEqual(
            pay["responses"]["200"]["content"]["application/json"]["schema"],
            {"$ref": "#/components/schemas/PayInvoiceOut"},
        )
        for status in ("400", "401", "409", "422"):
            self.assertEqual(
                pay["responses"][status]["content"]["application/json"]["schema"],
                {"$ref": "#/components/schemas/LndHubError"},
            )
        self.assertEqual(schemas["LndHubError"]["required"], ["error", "code", "message"])
        txs = doc["paths"]["/lndhub/gettxs"]["get"]
        self.assertEqual(txs["responses"]["200"]["content"]["application/json"]["schema"]["type"], "array")
        self.assertEqual({p["name"] for p in txs["parameters"]}, {"limit", "offset"})
        self.assertEqual({p["name"] for p in doc["paths"]["/lndhub/auth"]["post"]["parameters"]}, {"type"})
        callback = doc["paths"]["/lnurlp/{username}/callback"]["get"]
        self.assertEqual(callback["tags"], ["lnurl"])
        self.assertNotIn("security", callback)
        self.assertEqual({p["name"] for p in callback["parameters"]}, {"username", "amount", "comment"})
        self.assertEqual(
            callback["responses"]["400"]["content"]["application/json"]["schema"],
            {"$ref": "#/components/schemas/LnurlError"},
        )
        self.assertEqual(schemas["LnurlError"]["properties"]["status"]["const"], "ERROR")
        self.assertEqual(schemas["LnurlError"]["required"], ["status", "reason"])

    def test_bad_protocol_value_is_refused(self):
        with self.assertRaises(ValueError):
            openapi.register("GET", "/x", "x", protocol="soap")
