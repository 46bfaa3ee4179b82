import BitBudgetCLI
import Foundation

exit(BitBudgetCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
