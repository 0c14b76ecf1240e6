// The few Kubernetes API objects the provisioner writes and reads, with the API's field names.
// Only the fields Pocket sets or needs are modelled; decoding ignores the rest.

/// Requests and limits of a container, as quantities (`"512Mi"`, `"2"`, `"10737418240"`).
public struct ResourceRequirements: Codable, Hashable, Sendable {
    public var requests: [String: String]?
    public var limits: [String: String]?

    public init(requests: [String: String]? = nil, limits: [String: String]? = nil) {
        self.requests = requests
        self.limits = limits
    }
}

struct ObjectMeta: Codable {
    var name: String?
    var generateName: String?
    var namespace: String?
    var labels: [String: String]?
}

struct Pod: Encodable {
    var apiVersion = "v1"
    var kind = "Pod"
    var metadata: ObjectMeta
    var spec: PodSpec
}

struct PodSpec: Encodable {
    var containers: [Container]
    var volumes: [Volume]?
    var restartPolicy: String
    var automountServiceAccountToken: Bool
}

struct Container: Encodable {
    var name: String
    var image: String
    var imagePullPolicy: String
    var command: [String]
    var args: [String]
    var env: [EnvVar]
    var ports: [ContainerPort]
    var resources: ResourceRequirements
    var volumeMounts: [VolumeMount]?
}

struct EnvVar: Encodable {
    struct Source: Encodable {
        struct FieldRef: Encodable { var fieldPath: String }
        var fieldRef: FieldRef
    }
    var name: String
    var valueFrom: Source
}

struct ContainerPort: Encodable {
    var name: String
    var containerPort: Int
    var `protocol` = "TCP"
}

struct Volume: Encodable {
    struct EmptyDir: Encodable { var sizeLimit: String? }
    struct Secret: Encodable {
        var secretName: String
        var defaultMode: Int
    }
    var name: String
    var emptyDir: EmptyDir?
    var secret: Secret?
}

struct VolumeMount: Encodable {
    var name: String
    var mountPath: String
    var readOnly: Bool?
}

/// What the provisioner reads back of a pod: its name, labels and IP.
struct PodSummary: Decodable {
    struct Status: Decodable {
        var phase: String?
        var podIP: String?
    }
    var metadata: ObjectMeta
    var status: Status?
}

struct PodSummaryList: Decodable {
    var items: [PodSummary]
}

/// The API's error body (`kind: Status`); its `message` says what went wrong.
struct APIStatus: Decodable {
    var message: String?
}
