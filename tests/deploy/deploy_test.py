#!/usr/bin/python3
"""Checks the container and deployment files against each other and against the server.

  deploy_test.py SOURCE_DIR VISIONSERVE_BINARY

Dockerfile, deploy/compose.yaml (+ Grafana provisioning), deploy/k8s (kustomize) and the
prometheus-adapter rules are parsed and the fields that must agree are compared: ports of
probes, services and scrape targets vs the ports the server listens on, grace periods vs the
drain timeout, CPU limits vs threads, HPA metric vs the metrics the server exports, label
selectors vs pod labels, kustomization vs the files on disk, runtime packages vs the libraries
the built binary links. Needs python3-yaml and promtool (tools/setup.sh installs both).
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
BINARY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(SRC, "build/release/server/visionserve")
DEPLOY = os.path.join(SRC, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
ADAPTER = os.path.join(K8S, "prometheus-adapter")

SERVER_DEFAULT_DRAIN_S = 30  # server/main.cc: --drain-timeout-s default


def read(path):
    with open(path) as f:
        return f.read()


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def flag(args, name, default=None):
    """The value of --name in args (the last occurrence wins, as in server/flags.cc)."""
    value = default
    for i, a in enumerate(args):
        if a == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(f"--{name}="):
            value = a.split("=", 1)[1]
    return value


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def quantity_cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def quantity_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    return float(m.group(1)) * units.get(m.group(2), 1)


def parse_dockerfile(path):
    """Instructions as (KEYWORD, text) with continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in read(path).splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def stages(instructions):
    """{stage name: [(KEYWORD, text), ...]} after each FROM ... AS name."""
    result, name = {}, None
    for keyword, text in instructions:
        if keyword == "FROM":
            name = text.split()[-1] if " AS " in text.upper() else text
            result[name] = []
        elif name is not None:
            result[name].append((keyword, text))
    return result


def apt_packages(run_text):
    """Packages named by `apt-get install ...` in a RUN (up to the next && or ;)."""
    m = re.search(r"apt-get install (.*?)(&&|;|$)", run_text)
    return {w for w in m.group(1).split() if not w.startswith("-") and w != "\\"} if m else set()


DOCKERFILE = parse_dockerfile(os.path.join(SRC, "Dockerfile"))
STAGES = stages(DOCKERFILE)
RUNTIME = STAGES.get("runtime", [])
ENTRYPOINT = json.loads(next(t for k, t in RUNTIME if k == "ENTRYPOINT"))
GRPC_PORT = port_of(flag(ENTRYPOINT, "listen"))
METRICS_PORT = port_of(flag(ENTRYPOINT, "metrics-listen"))
IMAGE_UID = int(next(t for k, t in RUNTIME if k == "USER").split(":")[0])


def server_metric_names():
    text = read(os.path.join(SRC, "server/metrics/metrics.cc"))
    return set(re.findall(r'"(visionserve_[a-z0-9_]+)"', text))


class DockerfileTest(unittest.TestCase):
    def test_base_is_an_argument_defaulting_to_debian_bookworm(self):
        first = read(os.path.join(SRC, "Dockerfile"))
        self.assertRegex(first, r"(?m)^ARG BASE=debian:bookworm$")
        froms = [t for k, t in DOCKERFILE if k == "FROM"]
        self.assertEqual(len(froms), 2, froms)
        for f in froms:
            self.assertTrue(f.startswith("${BASE} AS "), f)

    def test_runtime_stage_runs_as_a_non_root_user_with_ports_signal_and_healthcheck(self):
        self.assertNotEqual(IMAGE_UID, 0)
        self.assertEqual(flag(ENTRYPOINT, "listen").rsplit(":", 1)[0], "0.0.0.0")
        self.assertEqual(flag(ENTRYPOINT, "metrics-listen").rsplit(":", 1)[0], "0.0.0.0")
        exposed = {int(p.split("/")[0]) for k, t in RUNTIME if k == "EXPOSE" for p in t.split()}
        self.assertEqual(exposed, {GRPC_PORT, METRICS_PORT})
        self.assertIn(("STOPSIGNAL", "SIGTERM"), RUNTIME)
        health = next(t for k, t in RUNTIME if k == "HEALTHCHECK")
        self.assertIn("visionctl", health)
        self.assertIn("health", health.split())
        # The check follows VISIONSERVE_PORT, which must default to the --listen port.
        env = " ".join(t for k, t in RUNTIME if k == "ENV")
        self.assertIn(f"VISIONSERVE_PORT={GRPC_PORT}", env)
        self.assertIn("${VISIONSERVE_PORT}", health)
        labels = " ".join(t for k, t in RUNTIME if k == "LABEL")
        for key in ("title", "version", "revision", "description"):
            self.assertIn(f"org.opencontainers.image.{key}=", labels)

    def test_default_repository_serves_the_default_model(self):
        copy = next(t for k, t in RUNTIME if k == "COPY" and "deploy/models" in t)
        self.assertTrue(copy.split()[-1].rstrip("/") == flag(ENTRYPOINT, "repository"), copy)
        models = {os.path.basename(p)[:-len(".pbtxt")]: read(p)
                  for p in glob.glob(os.path.join(DEPLOY, "models", "*.pbtxt"))}
        self.assertIn(flag(ENTRYPOINT, "default-model"), models)
        for name, text in models.items():
            self.assertRegex(text, r'(?m)^variant: "[a-z0-9_]+"$', name)

    def test_build_stage_installs_every_build_package_of_setup_sh(self):
        setup = read(os.path.join(SRC, "tools/setup.sh"))
        listed = set(re.search(r"PACKAGES=\((.*?)\n\)", setup, re.S).group(1).split())
        build_run = " ".join(t for k, t in STAGES["build"] if k == "RUN")
        installed = apt_packages(build_run)
        # -dev packages and code generators are what the build needs; benchmarks are off in the
        # image (VISIONSERVE_BUILD_BENCH=OFF).
        needed = {p for p in listed if (p.endswith("-dev") or p.startswith("protobuf-compiler"))
                  and p != "libbenchmark-dev"} | {"grpc-proto"}
        self.assertEqual(needed - installed, set(), "add these to the Dockerfile's build stage")
        self.assertIn("-DVISIONSERVE_BUILD_BENCH=OFF", build_run)

    def test_runtime_packages_cover_every_library_the_binary_links(self):
        runtime_run = " ".join(t for k, t in RUNTIME if k == "RUN")
        installed = apt_packages(runtime_run) | {"libc6", "libstdc++6", "libgcc-s1"}  # in any base
        binaries = [BINARY, os.path.join(os.path.dirname(BINARY), "visionctl")]
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        paths = {}
        for line in cache.splitlines():
            if " => " in line and "x86-64" in line:
                paths.setdefault(line.split()[0], line.split(" => ")[1])
        needed = set()
        for b in binaries:
            self.assertTrue(os.path.exists(b), b)
            dyn = subprocess.run(["readelf", "-d", b], capture_output=True, text=True).stdout
            for lib in re.findall(r"\(NEEDED\).*\[(.+)\]", dyn):
                path = paths[lib]
                candidates = [path, os.path.realpath(path), "/usr" + path]
                owner = None
                for c in candidates:
                    r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
                    if r.returncode == 0:
                        owner = r.stdout.split(":")[0]
                        break
                self.assertIsNotNone(owner, f"no Debian package owns {lib} ({path})")
                needed.add(owner)
        self.assertEqual(needed - installed, set(), "add these to the Dockerfile's runtime stage")

    def test_dockerignore_keeps_build_trees_and_git_out(self):
        ignore = read(os.path.join(SRC, ".dockerignore")).split()
        for entry in ("build", ".git"):
            self.assertIn(entry, ignore)


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_yaml_docs(os.path.join(DEPLOY, "compose.yaml"))[0]
        cls.services = cls.compose["services"]

    def mounts(self, service):
        """{container path: host path} of the bind mounts (host paths relative to deploy/)."""
        out = {}
        for v in self.services[service].get("volumes", []):
            host, container = v.split(":")[:2]
            if host.startswith("."):
                out[container] = os.path.normpath(os.path.join(DEPLOY, host))
        return out

    def test_services_and_bind_mounts_exist(self):
        self.assertEqual(set(self.services), {"visionserve", "prometheus", "grafana"})
        for name in self.services:
            for container, host in self.mounts(name).items():
                self.assertTrue(os.path.exists(host), f"{name}: {host} -> {container}")
        build = self.services["visionserve"]["build"]
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, build["context"], build["dockerfile"])))

    def test_visionserve_ports_and_grace_period(self):
        svc = self.services["visionserve"]
        published = {int(p.split(":")[-1]) for p in svc["ports"]}
        self.assertEqual(published, {GRPC_PORT, METRICS_PORT})
        drain = int(flag(ENTRYPOINT + svc.get("command", []), "drain-timeout-s",
                         SERVER_DEFAULT_DRAIN_S))
        grace = int(str(svc["stop_grace_period"]).rstrip("s"))
        self.assertGreater(grace, drain)

    def test_prometheus_scrapes_the_visionserve_service_and_loads_the_rules(self):
        mounts = self.mounts("prometheus")
        config_path = flag(self.services["prometheus"]["command"], "config.file")
        config = load_yaml_docs(mounts[config_path])[0]
        targets = [t for job in config["scrape_configs"]
                   for sc in job.get("static_configs", []) for t in sc["targets"]]
        self.assertIn(f"visionserve:{METRICS_PORT}", targets)
        for rule_file in config["rule_files"]:
            in_container = os.path.join(os.path.dirname(config_path), rule_file)
            self.assertIn(in_container, mounts, f"{rule_file} is not mounted next to the config")

    def test_grafana_datasource_and_dashboard_are_provisioned(self):
        mounts = self.mounts("grafana")
        ds_dir = mounts["/etc/grafana/provisioning/datasources"]
        sources = [d for f in glob.glob(os.path.join(ds_dir, "*.yaml"))
                   for d in load_yaml_docs(f)[0]["datasources"]]
        self.assertEqual(len(sources), 1)
        self.assertEqual(sources[0]["type"], "prometheus")
        self.assertEqual(sources[0]["url"], "http://prometheus:9090")
        self.assertTrue(sources[0]["isDefault"])
        db_dir = mounts["/etc/grafana/provisioning/dashboards"]
        providers = [p for f in glob.glob(os.path.join(db_dir, "*.yaml"))
                     for p in load_yaml_docs(f)[0]["providers"]]
        self.assertEqual(len(providers), 1)
        dashboards = [c for c in mounts if c.endswith(".json")]
        self.assertEqual(len(dashboards), 1)
        self.assertEqual(os.path.dirname(dashboards[0]), providers[0]["options"]["path"])
        with open(mounts[dashboards[0]]) as f:
            dashboard = json.load(f)
        variables = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        self.assertTrue(any(v["query"] == sources[0]["type"] for v in variables))


def k8s_objects():
    objects = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        for doc in load_yaml_docs(path):
            objects.append((os.path.basename(path), doc))
    return objects


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = k8s_objects()
        cls.by_kind = {}
        for _, o in cls.objects:
            cls.by_kind.setdefault(o["kind"], []).append(o)
        cls.deployment = cls.by_kind["Deployment"][0]
        cls.pod = cls.deployment["spec"]["template"]
        cls.container = cls.pod["spec"]["containers"][0]
        cls.args = ENTRYPOINT + cls.container.get("args", [])
        cls.ports = {p["name"]: p["containerPort"] for p in cls.container["ports"]}

    def test_every_manifest_is_a_named_object(self):
        for name, o in self.objects:
            for key in ("apiVersion", "kind", "metadata"):
                self.assertIn(key, o, name)
            self.assertTrue(o["metadata"].get("name"), name)
        self.assertEqual(len(self.by_kind["Deployment"]), 1)
        for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "ServiceMonitor", "Namespace"):
            self.assertIn(kind, self.by_kind)

    def test_kustomization_lists_every_file_and_only_existing_ones(self):
        for folder in (K8S, ADAPTER):
            k = load_yaml_docs(os.path.join(folder, "kustomization.yaml"))[0]
            listed = list(k.get("resources", []))
            for gen in k.get("configMapGenerator", []):
                listed += [f.split("=")[-1] for f in gen.get("files", [])]
            on_disk = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.yaml"))
                             if os.path.basename(p) != "kustomization.yaml")
            self.assertEqual(sorted(listed), on_disk, folder)
        k = load_yaml_docs(os.path.join(K8S, "kustomization.yaml"))[0]
        self.assertEqual(k["namespace"], self.by_kind["Namespace"][0]["metadata"]["name"])
        self.assertIn(self.container["image"], [i["name"] for i in k.get("images", [])])

    def test_container_ports_are_the_ports_the_server_listens_on(self):
        self.assertEqual(self.ports, {"grpc": GRPC_PORT, "metrics": METRICS_PORT})
        self.assertEqual(port_of(flag(self.args, "listen")), self.ports["grpc"])
        self.assertEqual(port_of(flag(self.args, "metrics-listen")), self.ports["metrics"])
        self.assertEqual(flag(self.args, "listen").rsplit(":", 1)[0], "0.0.0.0")

    def test_probes_are_grpc_health_checks_on_the_grpc_port(self):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = self.container[probe]
            self.assertEqual(set(p) & {"grpc", "httpGet", "tcpSocket", "exec"}, {"grpc"}, probe)
            self.assertEqual(p["grpc"]["port"], self.ports["grpc"], probe)
            self.assertNotIn("service", p["grpc"], probe)  # "" = the whole server
        # Loading compiles and warms every model: give it a minute at least.
        s = self.container["startupProbe"]
        self.assertGreaterEqual(s["periodSeconds"] * s["failureThreshold"], 60)

    def test_grace_period_covers_prestop_and_drain_and_liveness_does_not_cut_the_drain(self):
        drain = int(flag(self.args, "drain-timeout-s", SERVER_DEFAULT_DRAIN_S))
        pre_stop = 0
        hook = self.container.get("lifecycle", {}).get("preStop", {})
        if "exec" in hook:
            cmd = hook["exec"]["command"]
            self.assertEqual(cmd[0], "sleep")
            pre_stop = int(cmd[1])
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(grace, pre_stop + drain)
        # Health is NOT_SERVING while draining: liveness must tolerate a whole drain.
        live = self.container["livenessProbe"]
        self.assertGreater(live["periodSeconds"] * live["failureThreshold"], drain)

    def test_resources_and_threads(self):
        res = self.container["resources"]
        for kind in ("cpu", "memory"):
            self.assertIn(kind, res["requests"])
            self.assertIn(kind, res["limits"])
        cpu_limit = quantity_cpu(res["limits"]["cpu"])
        self.assertLessEqual(quantity_cpu(res["requests"]["cpu"]), cpu_limit)
        self.assertLessEqual(quantity_bytes(res["requests"]["memory"]),
                             quantity_bytes(res["limits"]["memory"]))
        # The thread pool is the cgroup quota rounded down: a fractional limit is wasted.
        self.assertEqual(cpu_limit, int(cpu_limit), "CPU limit must be whole CPUs")
        threads = int(flag(self.args, "threads", 0))
        self.assertLessEqual(threads, cpu_limit, "--threads above the CPU limit only throttles")
        # ~1.7 GiB resident with the default models after 32-image requests to all four at once
        # (deployment.yaml): the limit needs headroom above that.
        self.assertGreaterEqual(quantity_bytes(res["limits"]["memory"]), 2 << 30)

    def test_pod_runs_as_the_image_user_read_only(self):
        sc = self.pod["spec"]["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertEqual(sc["runAsUser"], IMAGE_UID)
        self.assertTrue(self.container["securityContext"]["readOnlyRootFilesystem"])

    def test_selectors_match_the_pod_labels(self):
        pod_labels = self.pod["metadata"]["labels"]
        self.assertTrue(matches(self.deployment["spec"]["selector"]["matchLabels"], pod_labels))
        for svc in self.by_kind["Service"]:
            self.assertTrue(matches(svc["spec"]["selector"], pod_labels), svc["metadata"]["name"])
            for port in svc["spec"]["ports"]:
                target = port["targetPort"]
                self.assertIn(target, self.ports if isinstance(target, str) else
                              self.ports.values(), svc["metadata"]["name"])
        pdb = self.by_kind["PodDisruptionBudget"][0]
        self.assertTrue(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels))

    def test_a_headless_service_serves_grpc(self):
        headless = [s for s in self.by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
        self.assertEqual(len(headless), 1)
        self.assertIn("grpc", [p["name"] for p in headless[0]["spec"]["ports"]])

    def test_service_monitor_scrapes_each_pod_once_on_the_metrics_port(self):
        sm = self.by_kind["ServiceMonitor"][0]
        selected = [s for s in self.by_kind["Service"]
                    if matches(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        self.assertEqual(len(selected), 1, "each pod must be scraped through one Service")
        ports = {p["name"]: p for p in selected[0]["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            self.assertEqual(ports[ep["port"]]["targetPort"], "metrics")
            self.assertEqual(ep.get("path", "/metrics"), "/metrics")

    def test_pdb_lets_a_node_drain_proceed(self):
        pdb = self.by_kind["PodDisruptionBudget"][0]["spec"]
        hpa = self.by_kind["HorizontalPodAutoscaler"][0]["spec"]
        if "maxUnavailable" in pdb:
            self.assertGreaterEqual(int(pdb["maxUnavailable"]), 1)
        else:
            self.assertLess(int(pdb["minAvailable"]), hpa["minReplicas"])

    def test_hpa_scales_the_deployment_on_a_metric_the_server_exports(self):
        hpa = self.by_kind["HorizontalPodAutoscaler"][0]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("Deployment",
                                                      self.deployment["metadata"]["name"]))
        self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        rules = {r["name"]["as"]: r for r in
                 load_yaml_docs(os.path.join(ADAPTER, "config.yaml"))[0]["rules"]}
        exported = server_metric_names()
        self.assertIn("visionserve_queue_depth_images", exported)  # the parser still works
        for m in hpa["spec"]["metrics"]:
            self.assertEqual(m["type"], "Pods")
            name = m["pods"]["metric"]["name"]
            self.assertIn(name, rules, "no prometheus-adapter rule exposes it")
            series = re.match(r"[a-z_:][a-z0-9_:]*", rules[name]["seriesQuery"]).group(0)
            self.assertIn(series, exported, "the server exports no such metric")
            self.assertFalse(series.endswith(("_total", "_bucket", "_count", "_sum")),
                             "a per-pod target needs a gauge")
            self.assertEqual(m["pods"]["target"]["type"], "AverageValue")

    def test_adapter_rules_are_valid_promql_keyed_by_namespace_and_pod(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing (Debian package prometheus)")
        rules = load_yaml_docs(os.path.join(ADAPTER, "config.yaml"))[0]["rules"]
        exported = server_metric_names()
        recording = []
        for i, r in enumerate(rules):
            overrides = r["resources"]["overrides"]
            self.assertEqual({v["resource"] for v in overrides.values()}, {"namespace", "pod"})
            series = re.match(r"[a-z_:][a-z0-9_:]*", r["seriesQuery"]).group(0)
            self.assertIn(series, exported)
            expr = (r["metricsQuery"].replace("<<.Series>>", series)
                    .replace("<<.LabelMatchers>>", 'namespace="visionserve",pod=~"a|b"')
                    .replace("<<.GroupBy>>", "pod"))
            recording.append({"record": f"adapter:rule{i}", "expr": expr})
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "adapter", "rules": recording}]}, f)
            f.flush()
            r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
