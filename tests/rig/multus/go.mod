// Pins the multus thick daemon and shim the node rig builds; setup.sh builds them from here.
module dnc.rig/multus

go 1.23.4

require gopkg.in/k8snetworkplumbingwg/multus-cni.v4 v4.2.2
