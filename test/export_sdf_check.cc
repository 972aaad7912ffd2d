// Loads an SDF world with libsdformat (the parser gz sim uses) and prints what it understood.
// Built and run by test_export.py::test_gazebo_world_loads_in_libsdformat when libsdformat's
// development files are installed (Debian: libsdformat-dev). Usage: export_sdf_check WORLD.sdf
// Exit code 0 when the parser reports no error.
#include <iostream>
#include <type_traits>
#include <sdf/sdf.hh>

int main(int argc, char **argv) {
  if (argc != 2) { std::cerr << "usage: export_sdf_check WORLD.sdf\n"; return 64; }
  sdf::ParserConfig config;
  sdf::Root root;
  sdf::Errors errors = root.Load(argv[1], config);
  for (const auto &e : errors) std::cout << "ERROR " << e.Message() << "\n";
  const sdf::World *world = root.WorldByIndex(0);
  if (world == nullptr) { std::cout << "ERROR no world\n"; return 1; }
  std::cout << "world " << world->Name() << " " << world->ModelCount() << " " << world->LightCount() << "\n";
  for (uint64_t i = 0; i < world->ModelCount(); ++i) {
    const sdf::Model *model = world->ModelByIndex(i);
    std::decay_t<decltype(model->RawPose())> pose;
    sdf::Errors poseErrors = model->SemanticPose().Resolve(pose);
    const sdf::Link *link = model->LinkByIndex(0);
    const auto &mass = link->Inertial().MassMatrix();
    std::cout << "model " << model->Name() << " static " << model->Static() << " pose " << pose.Pos()
              << " mass " << mass.Mass() << " valid_inertia " << mass.IsValid() << " collisions "
              << link->CollisionCount() << " pose_errors " << poseErrors.size() << "\n";
    for (uint64_t k = 0; k < link->VisualCount(); ++k) {
      const sdf::Mesh *mesh = link->VisualByIndex(k)->Geom()->MeshShape();
      if (mesh != nullptr) std::cout << "mesh " << model->Name() << " " << mesh->Uri() << "\n";
    }
  }
  return errors.empty() ? 0 : 2;
}
