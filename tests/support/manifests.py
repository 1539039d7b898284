"""Manifests for Sync tests, unique per test namespace (cluster-scoped names included)."""


def namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def configmap(name: str, data: str = "v1", namespace: str | None = None, annotations: str = "") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    ann = f"\n  annotations: {annotations}" if annotations else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}{ann}\ndata:\n  value: {data!r}\n"


def deployment(name: str, image: str = "nginx:1.27", app: str = "web", replicas: int = 2) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
      - name: web
        image: {image}
"""


def service(name: str, cluster_ip: str | None = None) -> str:
    ip = f"\n  clusterIP: {cluster_ip}" if cluster_ip else ""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:{ip}
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
"""


def crd(group: str, kind: str = "Widget", plural: str = "widgets", *, open_schema: bool = False) -> str:
    """A namespaced CRD; its schema takes `spec.size`, or anything with `open_schema`."""
    schema = (
        "x-kubernetes-preserve-unknown-fields: true"
        if open_schema
        else "properties:\n          spec:\n            type: object\n"
        "            properties:\n              size: {type: integer}"
    )
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {kind.lower()}, listKind: {kind}List}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        {schema}
"""


def custom(group: str, name: str, kind: str = "Widget", size: int = 3) -> str:
    return f"apiVersion: {group}/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  size: {size}\n"


def clusterrole(name: str) -> str:
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
"""


ALIASED_SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web
  labels: &labels {app: web}
spec:
  selector: *labels
  ports: [{port: 80, protocol: TCP}]
"""  # the selector is an alias of the labels: adding owner labels must not change it


def realistic_app(namespace: str, group: str) -> dict[str, str]:
    """What people deploy, in the forms a 1.20 API server serves: a Namespace, a Deployment
    of 2 replicas (its Pods stay Pending: no scheduler here), ClusterIP and NodePort
    Services, an Ingress, a ConfigMap, a Secret, a ServiceAccount, a Role and a RoleBinding
    named with `_`, an HPA, a CronJob, a CRD and one of its objects."""

    def meta(name: str) -> str:
        return f"metadata: {{name: {name}, namespace: {namespace}}}"

    return {
        "00-namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n",
        "crd.yaml": crd(group),
        "widget.yaml": custom(group, "gizmo").replace("  name: gizmo\n", f"  name: gizmo\n  namespace: {namespace}\n"),
        "web.yaml": deployment("web").replace(
            "metadata:\n  name: web\n", f"metadata:\n  name: web\n  namespace: {namespace}\n"
        ),
        "services.yaml": f"""apiVersion: v1
kind: Service
{meta("web")}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
---
apiVersion: v1
kind: Service
{meta("web-nodeport")}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
""",
        "ingress.yaml": f"""apiVersion: networking.k8s.io/v1
kind: Ingress
{meta("web")}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
""",
        "config.yaml": f"""apiVersion: v1
kind: ConfigMap
{meta("web-config")}
data: {{LOG_LEVEL: info, mode: '0644'}}
---
apiVersion: v1
kind: Secret
{meta("web-secret")}
type: Opaque
stringData: {{password: not-a-real-one}}
""",
        "rbac.yaml": f"""apiVersion: v1
kind: ServiceAccount
{meta("ci")}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
{meta("ci_deployer")}
rules:
- {{apiGroups: [apps], resources: [deployments], verbs: [get, list, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
{meta("ci_deployer")}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: ci_deployer}}
subjects:
- {{kind: ServiceAccount, name: ci, namespace: {namespace}}}
""",
        "autoscaling.yaml": f"""apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
{meta("web")}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - {{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}}}
""",
        "cronjob.yaml": f"""apiVersion: batch/v1beta1
kind: CronJob
{meta("report")}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: report, image: busybox:1.36, args: [date]}}]
""",
    }
